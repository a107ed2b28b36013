/**
 * What an operator reads at 3 a.m.: the exact text and shape of acks, counts, filters' errors and help.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

describe('produce acks in text mode', () => {
  it('carry the input line number, so they line up with the input after a rejected line', async () => {
    const result = await wal.run(['produce'], { input: '{"key":"a","payload":1}\n{"key":"b","payload":\n{"key":"c","payload":3}\n' })
    expect(result.code).toBe(4)
    const acks = result.stdout.trimEnd().split('\n')
    expect(acks).toHaveLength(2)
    expect(acks[0]).toMatch(/^line=1 id=[0-9A-Z]{26} partition=\d+ offset=\d+ durable=true$/)
    expect(acks[1]).toMatch(/^line=3 id=[0-9A-Z]{26} partition=\d+ offset=\d+ durable=true$/)
    expect(result.stderr).toContain('wal: line 2: not valid JSON')
  })

  it('carry it for a transaction\'s parts and marker too', async () => {
    const result = await wal.run(['produce'], { input: '{"key":"a","payload":1,"txn":"t1"}\n{"txn":"t1","commit":true}\n' })
    expect(result.code, result.stderr).toBe(0)
    const acks = result.stdout.trimEnd().split('\n')
    expect(acks[0]).toMatch(/^line=1 id=[0-9A-Z]{26} partition=\d+ offset=\d+ txn=t1 txnSeq=0 durable=true$/)
    expect(acks[1]).toMatch(/^line=2 id=[0-9A-Z]{26} partition=\d+ offset=\d+ txn=t1 commit=true parts=1 durable=true$/)
  })
})

describe('the DLQ in words', () => {
  beforeEach(async () => {
    // Not operations: the zero-config kv target dead-letters them.
    expect((await wal.run(['produce'], { input: ndjson([{ key: 'a', payload: { hello: 1 } }, { key: 'b', payload: { hello: 2 } }]) })).code).toBe(0)
    expect((await wal.run(['consume', '--until-idle'])).code).toBe(8)
  })

  it('dlq stats: "1 entry", "(for this filter)" only with a filter, and an empty result says which', async () => {
    expect((await wal.run(['dlq', 'stats'])).stdout).toMatch(/^2 entries\nCOUNT /)
    expect((await wal.run(['dlq', 'stats', '-k', 'a'])).stdout).toMatch(/^1 entry \(for this filter\)\nCOUNT /)
    expect((await wal.run(['dlq', 'stats', '-k', 'nobody'])).stdout).toBe('no DLQ entry matches this filter\n')
    expect((await wal.run(['dlq', 'purge', '--yes', '--all'])).code).toBe(0)
    expect((await wal.run(['dlq', 'stats'])).stdout).toBe('the DLQ is empty\n')
  })

  it('dlq replay: "1 entry"', async () => {
    const replay = await wal.run(['dlq', 'replay', '-k', 'a', '--dry-run'])
    expect(replay.stdout).toMatch(/^dry run: would replay 1 entry into "default" and park 0 \(nothing changed\)\n/)
  })

  it('a --where syntax error shows the expression with the caret under the place', async () => {
    const result = await wal.run(['dlq', 'ls', '--where', 'code == ("x"'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('is not an expression: Expecting ')
    expect(result.stderr).toContain(`got 'EndOfExpression'\n    code == ("x"\n    ------------^\n  hint: `)
  })

  it('an entry keeps its id across a replay of another, and dlq show takes it (the number, or the mutation id)', async () => {
    const entries = JSON.parse((await wal.run(['dlq', 'ls', '--json'])).stdout) as { entries: Array<{ seq: number; entry: string; key: string; id: string }> }
    const b = entries.entries.find((e) => e.key === 'b')!
    expect(b.entry).toBe(String(b.seq))
    expect((await wal.run(['dlq', 'replay', '-k', 'a'])).code).toBe(0)
    for (const ref of [b.entry, b.id]) {
      const shown = JSON.parse((await wal.run(['dlq', 'show', ref, '--json'])).stdout) as { entries: Array<{ key: string; entry: string }> }
      expect(shown.entries).toEqual([expect.objectContaining({ key: 'b', entry: b.entry })])
    }
  })
})

describe('tail --follow on a namespace with no log yet', () => {
  it('waits for the log, says so once, and prints from its first mutation', async () => {
    const tail = wal.spawn(['tail', '-n', 'fresh', '--follow'])
    let out = ''
    let err = ''
    tail.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    tail.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const exited = new Promise<number | null>((resolve) => tail.on('exit', (code) => resolve(code)))
    await waitFor(() => err.includes('waiting for its first mutation'), { timeoutMs: 30_000 })
    expect(err).toBe('wal: namespace "fresh" has no log yet: waiting for its first mutation (Ctrl-C to stop)\n')
    expect((await wal.run(['produce', '-n', 'fresh', '-k', 'first', '-p', '1'])).code).toBe(0)
    await waitFor(() => out.includes('key="first"'), { timeoutMs: 30_000 })
    tail.kill('SIGINT')
    expect(await exited).toBe(130)
    // Without --follow it is still "not found" (exit 7).
    expect((await wal.run(['tail', '-n', 'other'])).code).toBe(7)
  })
})

describe('tail --follow --until far ahead', () => {
  it('keeps following (no timer fires early, no Node warning) and prints what is produced meanwhile', async () => {
    expect((await wal.run(['produce', '-k', 'before', '-p', '1'])).code).toBe(0)
    const tail = wal.spawn(['tail', '--follow', '--from', 'beginning', '--until', '2099-01-01T00:00:00Z'])
    let out = ''
    let err = ''
    tail.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    tail.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const exited = new Promise<number | null>((resolve) => tail.on('exit', (code) => resolve(code)))
    await waitFor(() => out.includes('key="before"'), { timeoutMs: 30_000 })
    expect((await wal.run(['produce', '-k', 'after', '-p', '2'])).code).toBe(0)
    await waitFor(() => out.includes('key="after"'), { timeoutMs: 30_000 })
    tail.kill('SIGINT')
    await exited
    expect(err).not.toMatch(/Warning/)
  })
})

describe('help', () => {
  it('tail --help lists the live view\'s keys', async () => {
    const help = (await wal.run(['tail', '--help'])).stdout
    expect(help).toContain('--follow shows a live view. Its keys:')
    for (const line of ['/        filter: key=VALUE', '↑ ↓ k j  select a row', 'Enter    open or close', 'Esc      close the details', 'q        quit']) expect(help).toContain(`  ${line}`)
  })

  it('ns init --help mentions Cassandra and --allow-remap', async () => {
    const help = (await wal.run(['ns', 'init', '--help'])).stdout
    expect(help).toContain('Cassandra targets: their keyspace and tables')
    expect(help).toContain('--allow-remap')
  })
})

describe('produce --json acks', () => {
  it('carry the line too (unchanged)', async () => {
    const result = await wal.run(['produce', '--json'], { input: '{"payload":1}\n' })
    expect(jsonLines(result.stdout)).toEqual([expect.objectContaining({ line: 1, durable: true })])
  })
})

describe('config show --format yaml', () => {
  it('prints the config file in its own shape, which wal reads back to the same settings, with no secret in it', async () => {
    const { writeFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    writeFileSync(
      join(wal.cwd, '.walrc.yaml'),
      [
        'clusters:',
        '  kafka:',
        '    main:',
        '      brokers: [127.0.0.1:19094]',
        '      sasl: { mechanism: scram-sha-512, username: wal, password: hunter2hunter2 }',
        'namespaces:',
        '  orders:',
        '    partitions: 4',
        '    retry: { maxAttempts: 7 }',
        '    targets:',
        '      api: { type: http, url: "https://bob:pw@example.com/x?access_token=t0ps3cr3t&v=1", headers: { authorization: "${API_TOKEN}", x-team: blue } }',
        '      store: { type: kv }',
        '',
      ].join('\n'),
    )
    const env = { API_TOKEN: 'token-from-env' }
    const shown = await wal.run(['config', 'show', '--format', 'yaml'], { env })
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).not.toMatch(/hunter2|bob:pw|token-from-env|t0ps3cr3t/)
    expect(shown.stdout).toContain('/x?access_token=${WAL_SECRET_NAMESPACES_ORDERS_TARGETS_API_URL_ACCESS_TOKEN}&v=1')
    expect(shown.stdout).toContain('password: ${WAL_SECRET_CLUSTERS_KAFKA_MAIN_SASL_PASSWORD}')
    expect(shown.stdout).toContain('authorization: ${API_TOKEN}')
    expect(shown.stdout).toMatch(/^# .*\.walrc\.yaml, checked by wal config show --format yaml\n# secrets written in the file are left out: set WAL_SECRET_CLUSTERS_KAFKA_MAIN_SASL_PASSWORD, WAL_SECRET_NAMESPACES_ORDERS_TARGETS_API_URL_USERINFO, WAL_SECRET_NAMESPACES_ORDERS_TARGETS_API_URL_ACCESS_TOKEN before using this\n/)

    // Pasted back (with the secrets given as the comment says), wal reads the same settings.
    writeFileSync(join(wal.cwd, 'pasted.yaml'), shown.stdout)
    const back = { ...env, WAL_SECRET_CLUSTERS_KAFKA_MAIN_SASL_PASSWORD: 'hunter2hunter2', WAL_SECRET_NAMESPACES_ORDERS_TARGETS_API_URL_USERINFO: 'bob:pw', WAL_SECRET_NAMESPACES_ORDERS_TARGETS_API_URL_ACCESS_TOKEN: 't0ps3cr3t' }
    const original = JSON.parse((await wal.run(['config', 'show', '--json'], { env })).stdout) as Record<string, unknown>
    const pasted = await wal.run(['config', 'show', '--json', '--config', 'pasted.yaml'], { env: back })
    expect(pasted.code, pasted.stderr).toBe(0)
    const { source: _a, ...a } = original
    const { source: _b, ...b } = JSON.parse(pasted.stdout) as Record<string, unknown>
    expect(b).toEqual(a)
  })

  it('an invalid file is its config error (exit 3); with no file, it says so', async () => {
    const none = await wal.run(['config', 'show', '--format', 'yaml'])
    expect(none.stdout).toBe('# no config file: wal runs with its defaults (embedded namespaces, created on first produce)\n{}\n')
    const { writeFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'namespaces:\n  orders:\n    partitions: zero\n')
    const bad = await wal.run(['config', 'show', '--format', 'yaml'])
    expect(bad.code).toBe(3)
    expect(bad.stderr).toContain('namespaces.orders.partitions')
  })
})
