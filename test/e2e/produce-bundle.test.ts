/**
 * `wal produce` runs from a bundle of its own (dist/produce-main.js, chosen by bin/run.js), built from the
 * same sources as the full command table (dist/index.js) but loaded in a few files. It must behave exactly
 * like the full table: same output, same errors and hints, same exit codes, for good and bad command lines.
 * Each case runs three ways: as users run it (bin/run.js), all through oclif with its Config (the full
 * table's runThroughOclif: the reference), and through produce's bundle directly; all three must agree.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'bin', 'run.js')

let work: string
let home: string
const entries: Record<string, string> = {}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'wal-produce-bundle-test-'))
  home = join(work, 'home')
  mkdirSync(join(home, 'cwd'), { recursive: true })
  mkdirSync(join(work, 'xdg-config'))
  // A bundle's run() as bin/run.js calls it, with the arguments after the script's name.
  for (const [name, bundle, entry] of [['index', 'index', 'runThroughOclif'], ['produce-main', 'produce-main', 'run']] as const) {
    const script = join(work, `${name}.mjs`)
    writeFileSync(script, `const { ${entry}: run } = await import(${JSON.stringify(pathToFileURL(join(root, 'dist', `${bundle}.js`)).href)})\nawait run(${JSON.stringify(pathToFileURL(bin).href)})\n`)
    entries[name] = script
  }
  entries.bin = bin
})

afterAll(() => {
  rmSync(work, { recursive: true, force: true })
})

function run(entry: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, WAL_HOME: join(work, 'wal-home'), HOME: home, XDG_CONFIG_HOME: join(work, 'xdg-config') }
  delete env.WAL_CONFIG
  const result = spawnSync(process.execPath, [entries[entry]!, ...args], { cwd: join(home, 'cwd'), env, input, encoding: 'utf8' })
  // Ids, offsets and (without a key) partitions differ from one write to the next; the rest must not.
  const mask = (text: string): string => text.replace(/\b[0-9A-HJKMNP-TV-Z]{26}\b/g, '<id>').replace(/("?(?:offset|partition)"?[=:])\d+/g, '$1<n>')
  return { status: result.status, stdout: mask(result.stdout), stderr: mask(result.stderr) }
}

function expectSameEverywhere(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const full = run('index', args, input)
  expect(run('produce-main', args, input), `produce's bundle: wal ${args.join(' ')}`).toEqual(full)
  expect(run('bin', args, input), `bin/run.js: wal ${args.join(' ')}`).toEqual(full)
  return full
}

describe.skipIf(process.env.WAL_BIN)("wal produce's own bundle", () => {
  it('is what bin/run.js loads for `wal produce`, and it does not load the full command table', () => {
    const preload = join(work, 'record.mjs')
    writeFileSync(
      preload,
      `import { registerHooks } from 'node:module'\nimport { writeFileSync } from 'node:fs'\nconst urls = []\nregisterHooks({ resolve(s, c, next) { const r = next(s, c); urls.push(r.url); return r } })\nprocess.on('exit', () => writeFileSync(${JSON.stringify(join(work, 'urls.json'))}, JSON.stringify(urls)))\n`,
    )
    const env: NodeJS.ProcessEnv = { ...process.env, WAL_HOME: join(work, 'wal-home'), HOME: home, XDG_CONFIG_HOME: join(work, 'xdg-config') }
    delete env.NODE_OPTIONS
    const result = spawnSync(process.execPath, ['--import', pathToFileURL(preload).href, bin, 'produce', '-k', 'k', '-p', '{"a":1}'], { cwd: join(home, 'cwd'), env, encoding: 'utf8' })
    expect(result.status, result.stderr).toBe(0)
    const urls = JSON.parse(readFileSync(join(work, 'urls.json'), 'utf8')) as string[]
    expect(urls.some((url) => url.endsWith('/dist/produce-main.js'))).toBe(true)
    expect(urls.filter((url) => url.endsWith('/dist/index.js'))).toEqual([])
  })

  it('writes a mutation with the same ack, as text and as JSON, from -p and from stdin', () => {
    expect(expectSameEverywhere(['produce', '-k', 'k', '-p', '{"a":1}']).stdout).toMatch(/^line=1 id=<id> partition=<n> offset=<n> durable=true\n$/)
    expect(expectSameEverywhere(['produce', '-k', 'k', '-p', '{"a":1}', '--json']).status).toBe(0)
    const stdin = expectSameEverywhere(['produce'], '{"payload":{"a":1}}\n{"payload":2}\n')
    expect(stdin.status).toBe(0)
    expect(stdin.stdout.split('\n')).toHaveLength(3)
  })

  it('refuses bad flags alike: unknown (with did-you-mean), missing value, out of range, exclusive, --json errors', () => {
    for (const args of [
      ['produce', '--bogus'],
      ['produce', '--delya', '5s', '-p', '{}'],
      ['produce', '-k'],
      ['produce', '--delay', '5x', '-p', '{}'],
      ['produce', '--rate', '0/s', '-p', '{}'],
      ['produce', '--at', '2020-01-01', '--delay', '1s', '-p', '{}'],
      ['produce', '--json', '--bogus'],
      ['produce', '-k', '', '-p', '{}'],
      ['produce', '-k', 'k'],
      ['produce', '-k', 'k', 'extra', '-p', '{}'],
      ['produce', 'a=b', '-p', '{}'],
      ['produce', '--', '-p', '{}'],
    ]) {
      const result = expectSameEverywhere(args, '')
      expect(result.status, args.join(' ')).toBe(2)
      expect(result.stderr, args.join(' ')).toMatch(/^(wal: |\{"error")/)
    }
  })

  it('reports bad input and a missing config file alike, with their exit codes', () => {
    expect(expectSameEverywhere(['produce', '-p', '{bad']).status).toBe(2)
    expect(expectSameEverywhere(['produce', '-c', join(work, 'missing.yaml'), '-p', '{}']).status).toBe(3)
    expect(expectSameEverywhere(['produce'], 'not json\n{"payload":1}\n').status).toBe(4)
  })

  it('answers an unknown command after produce, and a misspelt one, with the same suggestions', () => {
    expect(expectSameEverywhere(['produce', 'extra', '-p', '{}']).status).toBe(2)
    const misspelt = expectSameEverywhere(['prodcue', '-p', '{}'])
    expect(misspelt.status).toBe(2)
    expect(misspelt.stderr).toContain('did you mean')
  })

  it('prints the same help for `wal produce --help` and `-h`', () => {
    for (const flag of ['--help', '-h']) {
      const help = expectSameEverywhere(['produce', flag])
      expect(help.status).toBe(0)
      expect(help.stdout).toContain('--payload-file')
    }
  })
})
