import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer, type TargetServer } from '../helpers/http-target-server.js'
import { deadLetters } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let server: TargetServer
beforeEach(async () => {
  wal = makeSandbox()
  server = await startTargetServer()
})
afterEach(async () => {
  await server.close()
  wal.cleanup()
})

interface Listing {
  seq: number
  id: string
  key: string
  target: string
  errorClass: string
  code: string
  replays: number
  parked: boolean
}

async function ls(...args: string[]): Promise<Listing[]> {
  return (JSON.parse((await wal.run(['dlq', 'ls', '--json', ...args])).stdout) as { entries: Listing[] }).entries
}

/** Junk payloads the kv target cannot apply: they are dead-lettered at once (fatal). */
async function deadLetterJunk(count: number, namespace = 'default'): Promise<void> {
  const input = Array.from({ length: count }, (_, i) => ({ key: `junk-${i}`, payload: { not: 'an operation', i }, headers: { batch: i % 2 === 0 ? 'even' : 'odd' } }))
  expect((await wal.run(['produce', '-n', namespace], { input: ndjson(input) })).code).toBe(0)
  // 8: the run dead-lettered mutations.
  expect((await wal.run(['consume', '-n', namespace, '--until-idle'])).code).toBe(8)
}

describe('wal dlq', () => {
  it('replays the selected entries once after the target is fixed, leaves the others, and a second replay changes nothing', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { api: { type: 'http', url: server.url, retry: { maxAttempts: 2, initialBackoffMs: 10 } } } } } }))
    server.always('down', 503)
    server.always('bad', 400)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((i) => ({ key: 'down', payload: { i } })).concat([{ key: 'bad', payload: { i: 9 } }])) })
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect((await ls('-n', 'orders')).map((e) => [e.key, e.code]).sort()).toEqual([['bad', 'HTTP_400'], ['down', 'HTTP_503'], ['down', 'HTTP_503'], ['down', 'HTTP_503']])

    const stats = JSON.parse((await wal.run(['dlq', 'stats', '-n', 'orders', '--json'])).stdout) as { total: number; groups: Array<{ code: string; count: number; example: string }> }
    expect(stats.total).toBe(4)
    expect(stats.groups.map((g) => [g.code, g.count])).toEqual([['HTTP_503', 3], ['HTTP_400', 1]])
    expect(stats.groups[0]!.example).toMatch(/answered 503/)

    server.always('down', 200) // fixed
    const before = server.received.length
    const replay = JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--error-class', 'retryable', '--json'])).stdout) as { replayed: number }
    expect(replay.replayed).toBe(3)
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    const after = server.received.slice(before)
    expect(after.map((r) => [r.key, r.status, JSON.parse(r.body).i])).toEqual([['down', 200, 1], ['down', 200, 2], ['down', 200, 3]])
    // The replayed copies keep their ids: the endpoint sees the same Idempotency-Key as before.
    const firstIds = new Set(server.received.slice(0, before).filter((r) => r.key === 'down').map((r) => r.idempotencyKey))
    expect(after.every((r) => firstIds.has(r.idempotencyKey))).toBe(true)
    expect((await ls('-n', 'orders')).map((e) => e.key)).toEqual(['bad'])

    const again = JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--error-class', 'retryable', '--json'])).stdout) as { replayed: number }
    expect(again.replayed).toBe(0)
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(server.received.length).toBe(before + 3)

    const audit = JSON.parse((await wal.run(['dlq', 'audit', '-n', 'orders', '--json'])).stdout) as { audit: Array<{ action: string; actor: string; details: Record<string, unknown> }> }
    expect(audit.audit.map((a) => [a.action, a.details.replayed, a.details.filter])).toEqual([
      ['replay', 3, { errorClass: 'retryable' }],
      ['replay', 0, { errorClass: 'retryable' }],
    ])
    expect(audit.audit[0]!.actor).toMatch(/@/)
  })

  it('finishes a replay killed halfway when run again, with nothing lost or replayed twice', async () => {
    await deadLetterJunk(1500)
    expect(await ls()).toHaveLength(1500)
    const child = wal.spawn(['dlq', 'replay', '--rate', '300/s'])
    child.stdout!.resume()
    let err = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise((resolve) => child.on('close', resolve))
    await waitFor(() => /replayed [1-9]\d*/.test(err))
    child.kill('SIGKILL')
    await closed
    const left = (await ls()).length
    expect(left).toBeGreaterThan(0)
    expect(left).toBeLessThan(1500)
    expect((await wal.run(['dlq', 'replay'])).code).toBe(0)
    expect(await ls()).toEqual([])
    // Every entry is in the log exactly once more, as replay #1.
    const copies = jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout).filter((r) => r.headers['wal-replays'] === '1')
    expect(copies).toHaveLength(1500)
    expect(new Set(copies.map((c) => c.id)).size).toBe(1500)
  })

  it('replays into another namespace when asked', async () => {
    await deadLetterJunk(3)
    const plan = JSON.parse((await wal.run(['dlq', 'replay', '--to-namespace', 'quarantine', '--json'])).stdout) as { replayed: number; toNamespace: string }
    expect(plan).toMatchObject({ replayed: 3, toNamespace: 'quarantine' })
    const moved = jsonLines<Envelope>((await wal.run(['tail', '-n', 'quarantine', '--json'])).stdout)
    expect(moved.map((r) => [r.key, r.namespace, r.target, r.headers['wal-replays']])).toEqual([0, 1, 2].map((i) => [`junk-${i}`, 'quarantine', 'kv', '1']))
    expect(await ls()).toEqual([])
  })

  it('--dry-run prints the plan and changes nothing', async () => {
    await deadLetterJunk(6)
    const dlqBefore = deadLetters(wal.stateDir)
    const logBefore = (await wal.run(['tail', '--json'])).stdout
    const plan = JSON.parse((await wal.run(['dlq', 'replay', '--dry-run', '--where', 'headers.batch == "even"', '--json'])).stdout) as {
      dryRun: boolean
      replayed: number
      groups: Array<{ target: string; errorClass: string; count: number }>
    }
    expect(plan).toMatchObject({ dryRun: true, replayed: 3, groups: [{ target: 'kv', errorClass: 'fatal', count: 3 }] })
    expect(deadLetters(wal.stateDir)).toEqual(dlqBefore)
    expect((await wal.run(['tail', '--json'])).stdout).toBe(logBefore)
    expect(JSON.parse((await wal.run(['dlq', 'audit', '--json'])).stdout)).toEqual({ audit: [] })
  })

  it('parks an entry replayed too often instead of cycling it, and ls shows it parked', async () => {
    await deadLetterJunk(1)
    for (let round = 1; round <= 2; round++) {
      expect(JSON.parse((await wal.run(['dlq', 'replay', '--max-replays', '2', '--json'])).stdout)).toMatchObject({ replayed: 1, parked: 0 })
      await wal.run(['consume', '--until-idle'])
      expect((await ls())[0]).toMatchObject({ replays: round, parked: false })
    }
    expect(JSON.parse((await wal.run(['dlq', 'replay', '--max-replays', '2', '--json'])).stdout)).toMatchObject({ replayed: 0, parked: 1 })
    expect((await ls())[0]).toMatchObject({ replays: 2, parked: true })
    expect((await wal.run(['dlq', 'ls'])).stdout).toMatch(/\(parked\)/)
  })

  it('export → produce → tail keeps keys, headers, payloads and failure history', async () => {
    await deadLetterJunk(3)
    const exported = await wal.run(['dlq', 'export'])
    expect(exported.code).toBe(0)
    const envelopes = jsonLines<Envelope>(exported.stdout)
    expect(envelopes).toHaveLength(3)
    expect((await wal.run(['produce', '-n', 'quarantine'], { input: exported.stdout })).code).toBe(0)
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'quarantine', '--json'])).stdout)
    const strip = (e: Envelope): unknown => ({ id: e.id, key: e.key, headers: e.headers, payload: e.payload, createdAt: e.createdAt, attempts: e.attempts, failures: e.failures })
    expect(tailed.map(strip)).toEqual(envelopes.map(strip))
    expect(tailed[0]!.failures).toEqual([expect.objectContaining({ target: 'kv', errorClass: 'fatal', code: 'NOT_AN_OPERATION', attempt: 1 })])
  })

  it('purge asks first: without a terminal it refuses unless --yes', async () => {
    await deadLetterJunk(4)
    const refused = await wal.run(['dlq', 'purge', '--where', 'headers.batch == "odd"'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/not purged: 2 entries stay in the DLQ/)
    expect(await ls()).toHaveLength(4)
    const purged = await wal.run(['dlq', 'purge', '--where', 'headers.batch == "odd"', '--yes', '--json'])
    expect(JSON.parse(purged.stdout)).toEqual({ purged: 2, matched: 2, total: 4 })
    expect((await ls()).map((e) => e.key)).toEqual(['junk-0', 'junk-2'])
    const audit = JSON.parse((await wal.run(['dlq', 'audit', '--json'])).stdout) as { audit: Array<{ action: string; details: Record<string, unknown> }> }
    expect(audit.audit).toEqual([expect.objectContaining({ action: 'purge', details: { namespace: 'default', filter: { where: 'headers.batch == "odd"' }, purged: 2 } })])
  })

  it('purge on a terminal asks, and purges only on yes', async () => {
    await deadLetterJunk(2)
    const { spawnSync } = await import('node:child_process')
    const { WAL_COMMAND, ROOT } = await import('../helpers/wal.js')
    const onTerminal = (answer: string): { status: number | null; stdout: string } =>
      spawnSync('python3', [join(ROOT, 'test', 'helpers', 'on-terminal.py'), '[y/N]', answer, '--', ...WAL_COMMAND, 'dlq', 'purge'], {
        env: { ...process.env, ...wal.env },
        cwd: wal.cwd,
        encoding: 'utf8',
      })
    const no = onTerminal('n')
    expect(no.stdout).toMatch(/Delete 2 of 2 DLQ entries of namespace "default"\? This cannot be undone\. \[y\/N\]/)
    expect(no.status).toBe(2)
    expect(await ls()).toHaveLength(2)
    const yes = onTerminal('y')
    expect(yes.status).toBe(0)
    expect(yes.stdout).toMatch(/purged 2 entries/)
    expect(await ls()).toEqual([])
  })

  it('explains a mutation: produced, each attempt, dead-lettered, replayed, applied', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { api: { type: 'http', url: server.url, retry: { maxAttempts: 2, initialBackoffMs: 10 } } } } } }))
    server.always('k', 503)
    const id = jsonLines<{ id: string }>((await wal.run(['produce', '-n', 'orders', '-k', 'k', '-p', '1', '--json'])).stdout)[0]!.id
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    let report = JSON.parse((await wal.run(['explain', id, '--json'])).stdout) as {
      namespace: string
      writes: Array<{ replay: number }>
      targets: Array<{ target: string; status: string; events: Array<{ event: string; attempt: number; code?: string }> }>
    }
    expect(report.namespace).toBe('orders')
    expect(report.targets[0]).toMatchObject({ target: 'api', status: 'dead-lettered' })
    expect(report.targets[0]!.events.map((e) => [e.event, e.attempt, e.code])).toEqual([
      ['failed', 1, 'HTTP_503'],
      ['dead-lettered', 2, 'HTTP_503'],
    ])
    server.always('k', 200)
    await wal.run(['dlq', 'replay', '-n', 'orders'])
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    report = JSON.parse((await wal.run(['explain', id, '-n', 'orders', '--json'])).stdout)
    expect(report.writes.map((w) => w.replay)).toEqual([0, 1])
    expect(report.targets[0]).toMatchObject({ status: 'applied' })
    const text = (await wal.run(['explain', id])).stdout
    expect(text).toMatch(/replayed \(#1\)/)
    expect(text).toMatch(/target api: applied/)
    const missing = await wal.run(['explain', '01M80K6XFDG62PY7DFWNXXTEAH'])
    expect(missing.code).toBe(7)
  })

  it('explains each delivery per target after a replay: the original and the replayed copy, each with its outcome', async () => {
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({ namespaces: { orders: { targets: { api: { type: 'http', url: server.url, retry: { maxAttempts: 2, initialBackoffMs: 10 } }, store: { type: 'kv' } } } } }),
    )
    server.always('k', 503)
    const payload = { op: 'put', table: 't', key: { id: 1 }, item: { v: 1 } }
    const id = jsonLines<{ id: string }>((await wal.run(['produce', '-n', 'orders', '-k', 'k', '-p', JSON.stringify(payload), '--json'])).stdout)[0]!.id
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(8)
    server.always('k', 200)
    expect((await wal.run(['dlq', 'replay', '-n', 'orders'])).code).toBe(0)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)

    interface Delivery {
      replay: number
      status: string
      detail: string
      events: Array<{ event: string; attempt: number }>
    }
    const report = JSON.parse((await wal.run(['explain', id, '--json'])).stdout) as { targets: Array<{ target: string; status: string; deliveries: Delivery[] }> }
    const api = report.targets.find((t) => t.target === 'api')!
    const store = report.targets.find((t) => t.target === 'store')!
    // The kv store applied the original on its first try; the replay was addressed to api only.
    expect(store.status).toBe('applied')
    expect(store.deliveries.map((d) => [d.replay, d.status, d.events.length])).toEqual([
      [0, 'applied', 0],
      [1, 'not addressed', 0],
    ])
    // api: the original failed twice and was dead-lettered (then replayed); the copy applied at once.
    expect(api.status).toBe('applied')
    expect(api.deliveries.map((d) => [d.replay, d.status, d.events.map((e) => [e.event, e.attempt])])).toEqual([
      [
        0,
        'dead-lettered',
        [
          ['failed', 1],
          ['dead-lettered', 2],
        ],
      ],
      [1, 'applied', []],
    ])
    expect(api.deliveries[0]!.detail).toMatch(/replayed from the DLQ \(#1\)/)

    const text = (await wal.run(['explain', id])).stdout
    expect(text).toMatch(/^target store: applied — applied on the first attempt/m)
    expect(text).toMatch(/^ {2}produced \(\d+:\d+\): dead-lettered — dead-lettered on attempt 2/m)
    expect(text).toMatch(/^ {2}replay #1 \(\d+:\d+\): applied — applied on the first attempt/m)
  })

  it('says how many matching entries it left out as parked, and replays them with --include-parked (audited)', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { api: { type: 'http', url: server.url, retry: { maxAttempts: 1 } } } } } }))
    server.always('loop', 503)
    await wal.run(['produce', '-n', 'orders', '-k', 'loop', '-p', '1'])
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    await wal.run(['dlq', 'replay', '-n', 'orders'])
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    // Replayed once already: with --max-replays 1 the loop guard parks it.
    expect(JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--max-replays', '1', '--json'])).stdout)).toMatchObject({ replayed: 0, parked: 1 })
    expect((await ls('-n', 'orders')).map((e) => [e.key, e.parked])).toEqual([['loop', true]])

    for (const args of [[], ['--max-replays', '10'], ['--where', 'parked == true']]) {
      const dry = await wal.run(['dlq', 'replay', '-n', 'orders', '--dry-run', ...args])
      expect(dry.stdout).toMatch(/would replay 0 entries/)
      expect(dry.stdout).toMatch(/^1 matching entry is parked by the loop guard and left out: add --include-parked to replay it$/m)
    }
    const planned = JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--dry-run', '--include-parked', '--json'])).stdout)
    expect(planned).toMatchObject({ dryRun: true, replayed: 1, unparked: 1, parkedLeftOut: 0 })
    expect(await ls('-n', 'orders')).toHaveLength(1)

    server.always('loop', 200)
    const done = JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--include-parked', '--json'])).stdout)
    expect(done).toMatchObject({ replayed: 1, unparked: 1, parked: 0 })
    expect(await ls('-n', 'orders')).toEqual([])
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect(server.received.filter((r) => r.key === 'loop' && r.status === 200)).toHaveLength(1)
    const audit = (await wal.run(['dlq', 'audit', '-n', 'orders'])).stdout
    expect(audit).toMatch(/replay .*"includeParked":true.*"unparked":1/)
  })
})
