import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { jsonLines, makeSandbox, ndjson, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => {
  chmodSync(wal.dir, 0o755)
  wal.cleanup()
})

async function countRecords(namespace = 'default'): Promise<number> {
  return jsonLines((await wal.run(['tail', '-n', namespace, '--json'])).stdout).length
}

describe('bad lines on stdin', () => {
  it('rejects malformed, unknown-field and oversize lines by number and lands the good ones around them (exit 4)', async () => {
    const big = 'x'.repeat(1024 * 1024 + 10)
    const input = [
      JSON.stringify({ key: 'good-1', payload: 1 }),
      '{"key":"broken", "payload":',
      JSON.stringify({ kye: 'typo', payload: 2 }),
      JSON.stringify({ key: 'big', payload: big }),
      JSON.stringify({ key: 'good-2', payload: 2 }),
      '[1,2,3]',
      JSON.stringify({ key: 'bad-b64', payload: '***', payloadEncoding: 'base64' }),
      JSON.stringify({ key: 'bad-header', payload: 1, headers: { n: 5 } }),
      JSON.stringify({ key: 'good-3', payload: 3 }),
    ].join('\n')
    const result = await wal.run(['produce'], { input })
    expect(result.code).toBe(4)
    expect(result.stdout.trim().split('\n')).toHaveLength(3)
    expect(result.stderr).toMatch(/line 2: not valid JSON/)
    expect(result.stderr).toMatch(/line 3: unknown field "kye"/)
    expect(result.stderr).toMatch(/line 4: payload is 1(\.0)? MiB, above the 1 MiB limit of namespace "default"/)
    expect(result.stderr).toMatch(/line 6: expected a JSON object/)
    expect(result.stderr).toMatch(/line 7: .*base64/)
    expect(result.stderr).toMatch(/line 8: field "headers.n"/)
    expect(result.stderr).toMatch(/6 of 9 mutations were rejected \(line 2, 3, 4, 6, 7, 8\); the other 3 are durable/)
    const keys = jsonLines<{ key: string }>((await wal.run(['tail', '--json'])).stdout).map((r) => r.key)
    expect(keys).toEqual(['good-1', 'good-2', 'good-3'])
  })

  it('reports rejections as JSON lines in input order with --json', async () => {
    const result = await wal.run(['produce', '--json'], { input: `${JSON.stringify({ key: 'a', payload: 1 })}\nnope\n` })
    expect(result.code).toBe(4)
    const [ok, bad] = jsonLines<{ line: number; durable: boolean; error?: { code: string } }>(result.stdout)
    expect(ok).toMatchObject({ line: 1, durable: true })
    expect(bad).toMatchObject({ line: 2, durable: false, error: { code: 'WAL_RECORD_MALFORMED' } })
    const error = JSON.parse(result.stderr) as { error: { code: string; exitCode: number } }
    expect(error.error).toMatchObject({ code: 'WAL_INPUT_REJECTED', exitCode: 4 })
  })

  it('does not disturb what was acked before', async () => {
    await wal.run(['produce'], { input: ndjson([{ key: 'a', payload: 1 }, { key: 'b', payload: 2 }]) })
    const before = (await wal.run(['tail', '--json'])).stdout
    await wal.run(['produce'], { input: 'garbage\n{"payload":\n' })
    expect((await wal.run(['tail', '--json'])).stdout).toBe(before)
  })
})

describe('usage errors (exit 2)', () => {
  it.each([
    [['produce', '-p', '{not json'], /-p is not valid JSON/],
    [['produce', '-p', '1', '--delay', 'soon'], /--delay "soon" is not a duration/],
    [['produce', '-p', '1', '--at', 'tomorrow'], /--at "tomorrow" is not an ISO 8601 time/],
    [['produce', '-p', '1', '-H', 'novalue'], /header "novalue" is not name=value/],
    [['produce', '-p', '1', '--delay', '1m', '--at', '2030-01-01T00:00:00Z'], /cannot also be provided/],
    [['produce', '--bogus'], /Nonexistent flag: --bogus/],
    [['produce', '-n', 'bad name!', '-p', '1'], /"bad name!" is not a valid namespace name/],
    [['produce', '-n', '../../escape', '-p', '1'], /"..\/..\/escape" is not a valid namespace name/],
    [['tail', '--from', 'yesterday-ish'], /--from "yesterday-ish" is not a position/],
  ])('%j fails with a clear message', async (args, message) => {
    const result = await wal.run(args)
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(message)
    expect(result.stdout).toBe('')
  })

  it('prints usage errors as JSON on stderr with --json', async () => {
    const result = await wal.run(['produce', '-p', '{', '--json'])
    expect(result.code).toBe(2)
    expect(JSON.parse(result.stderr)).toMatchObject({ error: { code: 'WAL_USAGE', exitCode: 2 } })
  })
})

describe('namespaces', () => {
  it('in zero-config mode, tailing a namespace nobody produced to is "not found" (exit 7)', async () => {
    const result = await wal.run(['tail', '-n', 'never'])
    expect(result.code).toBe(7)
    expect(result.stderr).toMatch(/namespace "never" has no log yet/)
  })

  it('with a config file, an undeclared namespace is an error that lists the declared ones', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'namespaces:\n  orders: {}\n  emails:\n    partitions: 2\n')
    const result = await wal.run(['produce', '-n', 'ordres', '-p', '1'])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/namespace "ordres" is not declared in .*\.walrc\.yaml/)
    expect(result.stderr).toMatch(/declared namespaces: orders, emails/)
    const line = await wal.run(['produce'], { input: ndjson([{ namespace: 'nope', payload: 1 }, { namespace: 'orders', payload: 2 }]) })
    expect(line.code).toBe(4)
    expect(line.stderr).toMatch(/line 1: namespace "nope" is not declared/)
    expect(await countRecords('orders')).toBe(1)
  })

  it('refuses to change the partition count of an existing log: a config problem (exit 3)', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'namespaces:\n  orders:\n    partitions: 4\n')
    expect((await wal.run(['produce', '-n', 'orders', '-p', '1'])).code).toBe(0)
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'namespaces:\n  orders:\n    partitions: 16\n')
    const result = await wal.run(['produce', '-n', 'orders', '-p', '2'])
    expect(result.code).toBe(3)
    expect(result.stderr).toMatch(/its embedded log has 4 partitions, but the config asks for 16/)
    expect(result.stderr).toMatch(/set partitions: 4/)
  })
})

describe('config errors (exit 3)', () => {
  it('names the file, the key path, what was expected and what was found', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'namespaces:\n  orders:\n    partitions: eight\n')
    const result = await wal.run(['config', 'validate'])
    expect(result.code).toBe(3)
    expect(result.stderr).toMatch(/\.walrc\.yaml: key "namespaces\.orders\.partitions": expected a whole number of partitions, found "eight"/)
  })

  it('suggests the key meant by a typo', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitons: 4 } } }))
    const result = await wal.run(['produce', '-n', 'orders', '-p', '1'])
    expect(result.code).toBe(3)
    expect(result.stderr).toMatch(/unknown key "namespaces\.orders\.partitons"/)
    expect(result.stderr).toMatch(/did you mean "namespaces\.orders\.partitions"\?/)
  })

  it('reports YAML syntax errors and unreadable files', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'namespaces:\n  orders: [\n')
    const broken = await wal.run(['ns', 'ls'])
    expect(broken.code).toBe(3)
    expect(broken.stderr).toMatch(/\.walrc\.yaml:\d+:\d+: not valid YAML: \S+/)
    const missing = await wal.run(['ns', 'ls', '-c', 'nowhere.yaml'])
    expect(missing.code).toBe(3)
    expect(missing.stderr).toMatch(/cannot read config nowhere\.yaml: no such file/)
    const fromEnv = await wal.run(['ns', 'ls'], { env: { WAL_CONFIG: join(wal.dir, 'absent.json') } })
    expect(fromEnv.code).toBe(3)
    expect(fromEnv.stderr).toMatch(/absent\.json: no such file/)
  })

  it('interpolates ${ENV} and names a missing variable', async () => {
    writeFileSync(join(wal.cwd, 'wal.yaml'), 'stateDir: ${MY_STATE}/x\nnamespaces:\n  orders:\n    description: "for ${TEAM:-ops}"\n')
    const missing = await wal.run(['config', 'validate', '-c', 'wal.yaml'])
    expect(missing.code).toBe(3)
    expect(missing.stderr).toMatch(/wal\.yaml: key "stateDir": environment variable MY_STATE is not set/)
    const ok = await wal.run(['config', 'show', '-c', 'wal.yaml', '--json'], { env: { MY_STATE: join(wal.dir, 'st') } })
    expect(ok.code).toBe(0)
    const shown = JSON.parse(ok.stdout) as { stateDir: string; namespaces: { orders: { description: string } } }
    expect(shown.stateDir).toBe(join(wal.dir, 'st', 'x'))
    expect(shown.namespaces.orders.description).toBe('for ops')
  })
})

describe('state directory problems (exit 5)', () => {
  it('says the state directory cannot be written, and writes nothing', async () => {
    const blocker = join(wal.dir, 'not-a-dir')
    writeFileSync(blocker, '')
    const result = await wal.run(['produce', '-p', '1'], { env: { WAL_HOME: join(blocker, 'state') } })
    expect(result.code).toBe(5)
    expect(result.stderr).toMatch(/cannot open the embedded log .*not-a-dir\/state\/embedded\/default\.db/)
    expect(result.stdout).toBe('')
  })

  it('says permission is denied when the state directory is read-only, and keeps what was acked', async () => {
    const stateDir = join(wal.dir, 'ro-state')
    mkdirSync(stateDir)
    chmodSync(wal.dir, 0o755)
    expect((await wal.run(['produce', '-k', 'kept', '-p', '1'], { env: { WAL_HOME: stateDir } })).code).toBe(0)
    // As root, permissions do not apply: run wal as an unprivileged user then.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
    chmodSync(stateDir, 0o555)
    const result = await wal.run(['produce', '-p', '1'], { env: { WAL_HOME: stateDir }, ...asUser })
    expect(result.code).toBe(5)
    expect(result.stderr).toMatch(/cannot (open|write to) the embedded log .*: permission denied/)
    // A large stream commits on the writer thread (when a core is idle); its failure is reported the same way.
    const stream = await wal.run(['produce'], {
      env: { WAL_HOME: stateDir },
      ...asUser,
      input: ndjson(Array.from({ length: 3000 }, (_, i) => ({ key: `k${i}`, payload: i }))),
    })
    expect(stream.code).toBe(5)
    expect(stream.stderr).toMatch(/cannot (open|write to) the embedded log .*: permission denied.*nothing from line 1 on was written/)
    expect(stream.stdout).toBe('')
    chmodSync(stateDir, 0o755)
    const kept = await wal.run(['tail', '--json'], { env: { WAL_HOME: stateDir } })
    expect(jsonLines<{ key: string }>(kept.stdout).map((r) => r.key)).toEqual(['kept'])
  })
})
