// Loading a config is safe: nothing planted above the project is run, JS configs others could have
// written are refused, and every broken config is a config error (exit 3) naming the file and where,
// within the time limit, never a hang, a crash or WAL_INTERNAL.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { makeSandbox, waitFor, WAL_SHELL, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

function write(name: string, text: string, mode = 0o644): string {
  const path = join(wal.cwd, name)
  writeFileSync(path, text)
  chmodSync(path, mode)
  return path
}

async function validate(env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string; error: { code: string; message: string } }> {
  const result = await wal.run(['config', 'validate', '--json'], { env })
  const error = result.stderr.trim() ? (JSON.parse(result.stderr.trim().split('\n').at(-1)!) as { error: { code: string; message: string } }).error : { code: '', message: '' }
  return { code: result.code, stderr: result.stderr, error }
}

describe('the config search', () => {
  it('does not run a config planted in a directory above the project or outside $HOME', async () => {
    const marker = join(wal.dir, 'ran')
    // The working directory is $TMP/wal-test-*/work: neither under $HOME nor in a project.
    writeFileSync(join(wal.dir, '.walrc.cjs'), `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x'); module.exports = { namespaces: { planted: {} } }`)
    const result = await wal.run(['config', 'validate', '--json'])
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ path: null })
    expect(existsSync(marker)).toBe(false)
  })

  it('refuses a FIFO or a device planted where it looks (exit 3 naming it), instead of hanging or reading forever; --config may still be a pipe', async () => {
    expect(spawnSync('mkfifo', [join(wal.cwd, '.walrc.yaml')]).status).toBe(0)
    const fifo = await validate()
    expect(fifo.code).toBe(3)
    expect(fifo.error).toMatchObject({ code: 'WAL_CONFIG_UNSAFE', message: `refusing to read ${join(wal.cwd, '.walrc.yaml')} as a config: it is not a regular file (a FIFO, socket or device)` })
    rmSync(join(wal.cwd, '.walrc.yaml'))
    mkdirSync(join(wal.cwd, '.config'))
    symlinkSync('/dev/zero', join(wal.cwd, '.config', 'walrc.json'))
    const zero = await wal.run(['ns', 'ls'])
    expect(zero.code).toBe(3)
    expect(zero.stderr).toContain(`refusing to read ${join(wal.cwd, '.config', 'walrc.json')} as a config`)
    // Named by the user, a pipe is read (process substitution), and a flood is cut off with a message.
    const piped = spawnSync('bash', ['-c', `${WAL_SHELL} config validate --config <(echo '{"namespaces":{"piped":{}}}')`], { env: { ...process.env, ...wal.env }, cwd: wal.dir, encoding: 'utf8' })
    expect(piped.status, piped.stderr).toBe(0)
    expect(piped.stdout).toContain('valid (1 namespace: piped)')
    const flood = await wal.run(['config', 'validate', '--config', '/dev/zero'])
    expect(flood.code).toBe(3)
    expect(flood.stderr).toContain('/dev/zero: a config is at most 4 MiB; this one is larger')
  })

  it('ends on the first Ctrl-C or SIGTERM while it waits for a FIFO named by --config or --payload-file that nobody writes to (exit 130)', async () => {
    const fifo = join(wal.dir, 'fifo')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    for (const [args, signal] of [
      [['config', 'validate', '--config', fifo], 'SIGINT'],
      [['produce', '-k', 'k', '--payload-file', fifo], 'SIGTERM'],
    ] as const) {
      const child = wal.spawn(args)
      let stderr = ''
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
      // Waiting on the FIFO: no writer yet. (Before, the open held a thread and no signal could end wal.)
      await new Promise((resolve) => setTimeout(resolve, 1500))
      child.kill(signal)
      const ended = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000))])
      if (ended === 'hung') child.kill('SIGKILL')
      expect(ended, `${args.join(' ')}: ${stderr}`).toBe(130)
      expect(stderr).toContain(`interrupted while reading ${fifo}`)
    }
    // With a writer, the FIFO is read as a file.
    const reader = wal.run(['config', 'validate', '--config', fifo])
    await writeFile(fifo, '{"namespaces":{"fromFifo":{}}}')
    const read = await reader
    expect(read.code, read.stderr).toBe(0)
    expect(read.stdout).toContain('valid (1 namespace: fromFifo)')
  })

  it("never runs or reads a cosmiconfig meta config (.config/config.js, package.json#cosmiconfig) in the working directory", async () => {
    const marker = join(wal.dir, 'ran')
    mkdirSync(join(wal.cwd, '.config'))
    write('.config/config.js', `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x'); module.exports = {}`)
    write('package.json', JSON.stringify({ name: 'app', cosmiconfig: { searchPlaces: ['planted.yaml'] } }))
    write('planted.yaml', 'namespaces:\n  planted: {}\n')
    for (const args of [['config', 'validate', '--json'], ['ns', 'ls', '--json']]) {
      const result = await wal.run(args)
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).not.toContain('planted')
    }
    expect(existsSync(marker)).toBe(false)
  })

  it('finds the config at the project root from a directory inside it', async () => {
    mkdirSync(join(wal.cwd, '.git'))
    write('.walrc.yaml', 'namespaces:\n  orders: {}\n')
    mkdirSync(join(wal.cwd, 'src', 'deep'), { recursive: true })
    const result = await wal.run(['config', 'validate', '--json'], { cwd: join(wal.cwd, 'src', 'deep') })
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ namespaces: ['orders'] })
  })
})

describe('a JS config', () => {
  it('is refused when others can write it, saying how to allow it', async () => {
    const path = write('.walrc.mjs', 'export default { namespaces: { a: {} } }', 0o666)
    const refused = await validate()
    expect(refused.code).toBe(3)
    expect(refused.error.code).toBe('WAL_CONFIG_UNSAFE')
    expect(refused.stderr).toContain('others can write it')
    expect(refused.stderr).toContain(`chmod go-w '${path}'`)
    chmodSync(path, 0o644)
    expect((await validate()).code).toBe(0)
  })

  it('that never finishes loading is a config error after the time limit, and SIGTERM stops it at once', async () => {
    write('.walrc.mjs', 'await new Promise(() => setInterval(() => {}, 1000)); export default {}')
    const slow = await validate({ WAL_CONFIG_TIMEOUT_MS: '2000' })
    expect(slow.code).toBe(3)
    expect(slow.error.code).toBe('WAL_CONFIG_TIMEOUT')
    expect(slow.error.message).toContain('did not finish loading within 2000 ms')
    write('.walrc.mjs', 'while (true) {}')
    expect((await validate({ WAL_CONFIG_TIMEOUT_MS: '2000' })).error.code).toBe('WAL_CONFIG_TIMEOUT')

    const loading = join(wal.dir, 'loading')
    write('.walrc.mjs', `(await import('node:fs')).writeFileSync(${JSON.stringify(loading)}, ''); await new Promise(() => setInterval(() => {}, 1000)); export default {}`)
    const child = wal.spawn(['config', 'validate'])
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    // Once it is loading, one SIGTERM ends it (the limit is 10 s; this is well before).
    await waitFor(() => existsSync(loading))
    child.kill('SIGTERM')
    expect(await exited).toBe(130)
    expect(stderr).toContain('interrupted while loading the config')
  })

  it('that is circular, throws while read or throws while run is a config error naming the file', async () => {
    const cases: Array<[string, RegExp]> = [
      ['const a = { namespaces: {} }; a.namespaces.self = a; export default a', /key "namespaces\.self": the value contains itself/],
      ['export default { get namespaces() { throw new Error("boom") } }', /exports something that is not plain data: boom/],
      ['throw new Error("broken at start")', /failed while running: broken at start/],
      ['export default { namespaces: { a: { rate: () => 1 } } }', /not plain data/],
    ]
    for (const [source, message] of cases) {
      const path = write('.walrc.mjs', source)
      const result = await validate()
      expect(result.code, source).toBe(3)
      expect(result.error.message, source).toMatch(message)
      expect(result.error.message).toContain(path)
    }
  })
})

describe('a broken YAML or JSON config', () => {
  it('gives file, line, column and reason', async () => {
    const yaml = write('.walrc.yaml', 'namespaces:\n  orders: {partitions: 4\n  emails: {}\n')
    const result = await validate()
    expect(result.code).toBe(3)
    expect(result.error.code).toBe('WAL_CONFIG_SYNTAX')
    expect(result.error.message).toMatch(new RegExp(`^${yaml.replaceAll('.', '\\.')}:\\d+:\\d+: not valid YAML: \\S`))
    write('.walrc.yaml', '')
    const json = write('.walrc.json', '{\n  "namespaces": {,}\n}\n')
    const bad = await validate()
    expect(bad.error.message).toBe(`${json}:2:18: not valid JSON: Expected property name or '}'`)
  })

  it('with a self-referencing alias or a billion laughs is a config error within the time limit', async () => {
    write('.walrc.yaml', 'namespaces: &a\n  x: *a\n')
    const self = await validate()
    expect(self.code).toBe(3)
    expect(self.error.message).toContain('key "namespaces.x": the value contains itself')
    const laughs = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]']
    for (let i = 1; i < 10; i++) laughs.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`)
    write('.walrc.yaml', `${laughs.join('\n')}\nnamespaces: {}\n`)
    const bomb = await validate()
    expect(bomb.code).toBe(3)
    expect(bomb.error.message).toContain('expands to more than 100000 values')
  })

  it('reports every problem, not only the first', async () => {
    write('.walrc.yaml', 'namespaces:\n  a: { partitions: -1, bogus: 1 }\n  b: { targets: { t: { type: http, url: "file:///etc/passwd" } } }\n')
    const result = await validate()
    expect(result.code).toBe(3)
    expect(result.error.message).toContain('3 problems')
    expect(result.error.message).toContain('namespaces.a.partitions')
    expect(result.error.message).toContain('unknown key "namespaces.a.bogus"')
    expect(result.error.message).toContain('namespaces.b.targets.t.url')
  })
})
