import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer, type TargetServer } from '../helpers/http-target-server.js'
import { deadLetters, history, kvItems, scheduled } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Sandbox } from '../helpers/wal.js'

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

function put(table: string, id: number | string, item: Record<string, unknown>): Record<string, unknown> {
  return { op: 'put', table, key: { id }, item: { id, ...item } }
}

function configure(targets: Record<string, unknown>, extra: Record<string, unknown> = {}): void {
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 4, targets, ...extra } } }))
}

interface Summary {
  targets: Array<{ target: string; applied: number; retried: number; scheduled: number; deadLettered: number; circuitOpened: number; lag: number }>
}

describe('wal consume on the zero-config kv target', () => {
  it('applies puts, deletes and batches, keeps the last write per key, and dead-letters what it cannot apply', async () => {
    const input = [
      { key: 'u1', payload: put('users', 1, { name: 'Ada' }) },
      { key: 'u2', payload: put('users', 2, { name: 'Bob' }) },
      { key: 'u1', payload: put('users', 1, { name: 'Ada Lovelace' }) },
      { key: 'u2', payload: { op: 'delete', table: 'users', key: { id: 2 } } },
      { key: 'o1', payload: { op: 'batch', parts: [put('orders', 'o1', { user: 1 }), put('order_lines', 'o1-1', { qty: 2 })] } },
      { key: 'junk', payload: { hello: 'world' } },
    ]
    expect((await wal.run(['produce'], { input: ndjson(input) })).code).toBe(0)
    const result = await wal.run(['consume', '--until-idle', '--json'])
    // Dead-lettering during the run: exit 8, so scripts can tell.
    expect(result.code).toBe(8)
    const summary = JSON.parse(result.stdout) as Summary
    expect(summary.targets).toEqual([expect.objectContaining({ target: 'kv', applied: 5, deadLettered: 1, lag: 0 })])
    expect(summary).toMatchObject({ deadLettered: 1 })
    const items = Object.fromEntries(kvItems(wal.stateDir).map((r) => [`${r.tbl}:${r.pk}`, r]))
    expect(JSON.parse(items['users:[["id",1]]']!.item!)).toEqual({ id: 1, name: 'Ada Lovelace' })
    expect(items['users:[["id",2]]']!.deleted).toBe(1)
    expect(items['orders:[["id","o1"]]']).toBeDefined()
    expect(items['order_lines:[["id","o1-1"]]']).toBeDefined()
    const [dead] = deadLetters(wal.stateDir)
    expect(dead).toMatchObject({ target: 'kv', key: 'junk', error_class: 'fatal', code: 'NOT_AN_OPERATION' })
    expect(JSON.parse(dead!.envelope)).toMatchObject({ key: 'junk', payload: { hello: 'world' }, attempts: 1, failures: [{ errorClass: 'fatal', attempt: 1 }] })

    // Consuming again changes nothing (the offsets were committed), and dead-letters nothing: exit 0.
    const rerun = await wal.run(['consume', '--until-idle', '--json'])
    expect(rerun.code).toBe(0)
    const again = JSON.parse(rerun.stdout) as Summary
    expect(again.targets[0]).toMatchObject({ applied: 0, deadLettered: 0 })
  })
})

describe('wal consume against an HTTP endpoint', () => {
  it('retries retryable failures with backoff, dead-letters fatal ones, and keeps per-key order', async () => {
    configure({ api: { type: 'http', url: server.url, timeoutMs: 2000, retry: { maxAttempts: 4, initialBackoffMs: 100, multiplier: 2, maxBackoffMs: 1000, jitter: 0 } } })
    server.failFirst('flaky', 2)
    server.always('doomed', 503)
    server.always('rejected', 400)
    server.failFirst('throttled', 1, 429)
    const input = []
    for (let i = 0; i < 5; i++) for (const key of ['flaky', 'steady', 'doomed', 'rejected', 'throttled']) input.push({ key, payload: { key, i } })
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'], { env: {} })
    expect(result.code).toBe(8)
    const summary = JSON.parse(result.stdout) as Summary
    expect(summary.targets[0]).toMatchObject({ target: 'api', deadLettered: 10 })

    const applied = server.received.filter((r) => r.status === 200)
    // Each key's mutations reached the endpoint in produce order, also across retries.
    for (const key of ['flaky', 'steady', 'throttled']) {
      expect(applied.filter((r) => r.key === key).map((r) => (JSON.parse(r.body) as { i: number }).i)).toEqual([0, 1, 2, 3, 4])
    }
    // flaky: two 503s, then success on attempt 3, with backoffs of ~100 and ~200 ms between.
    const flaky = server.received.filter((r) => r.key === 'flaky').slice(0, 3)
    expect(flaky.map((r) => [r.status, r.attempt])).toEqual([[503, 1], [503, 2], [200, 3]])
    // (Lower bounds only: a busy machine makes every gap longer, never shorter.)
    expect(flaky[1]!.atMs - flaky[0]!.atMs).toBeGreaterThanOrEqual(90)
    expect(flaky[2]!.atMs - flaky[1]!.atMs).toBeGreaterThanOrEqual(190)
    // Every request carries the mutation id as its Idempotency-Key; retries repeat it.
    expect(new Set(flaky.map((r) => r.idempotencyKey)).size).toBe(1)

    const dead = deadLetters(wal.stateDir, 'orders')
    const rejected = dead.filter((d) => d.key === 'rejected')
    expect(rejected).toHaveLength(5)
    expect(rejected.every((d) => d.error_class === 'fatal' && d.code === 'HTTP_400')).toBe(true)
    // 400 is fatal: one attempt each, no retries.
    expect(server.received.filter((r) => r.key === 'rejected')).toHaveLength(5)
    const doomed = dead.filter((d) => d.key === 'doomed')
    expect(doomed.length).toBe(5)
    expect(JSON.parse(doomed[0]!.envelope)).toMatchObject({ attempts: 4, failures: [{ attempt: 1, code: 'HTTP_503' }, { attempt: 2 }, { attempt: 3 }, { attempt: 4 }] })
    // Every mutation ended applied (the endpoint said 200 to its id) or dead-lettered, not both.
    const acks = jsonLines<Ack>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    const appliedIds = new Set(applied.map((r) => r.idempotencyKey))
    const deadIds = new Set(dead.map((d) => d.id))
    for (const ack of acks) expect(appliedIds.has(ack.id) !== deadIds.has(ack.id), ack.id).toBe(true)
    // Retried ones have their story in the history: each failure, then the end.
    const flakyEvents = history(wal.stateDir, 'orders').filter((e) => e.mutation_id === flaky[0]!.idempotencyKey).map((e) => [e.event, e.attempt])
    expect(flakyEvents).toEqual([['failed', 1], ['failed', 2], ['applied', 3]])
  })

  it('moves long backoffs to the schedule, so a restart neither loses nor resets them', async () => {
    configure({ api: { type: 'http', url: server.url, timeoutMs: 2000, retry: { maxAttempts: 5, initialBackoffMs: 60_000, jitter: 0 } } })
    server.failFirst('slow', 1)
    await wal.run(['produce', '-n', 'orders', '-k', 'slow', '-p', '1'])
    await wal.run(['produce', '-n', 'orders', '-k', 'slow', '-p', '2'])
    await wal.run(['produce', '-n', 'orders', '-k', 'other', '-p', '3'])
    const first = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(first.targets[0]).toMatchObject({ applied: 1, retried: 1, lag: 0 })
    // The failed one waits a minute; the next of its key waits behind it; the other key went through.
    expect(scheduled(wal.stateDir, 'orders').map((s) => [s.key, JSON.parse(s.envelope).payload])).toEqual([
      ['slow', 1],
      ['slow', 2],
    ])
    expect(server.received.filter((r) => r.status === 200).map((r) => r.body)).toEqual(['3'])
    // A minute later (clock moved), a new consumer applies both, in order, on attempt 2 and 1.
    const later = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'], { env: { WAL_CLOCK_OFFSET: '61s' } })).stdout) as Summary
    expect(later.targets[0]).toMatchObject({ applied: 2 })
    expect(server.received.filter((r) => r.key === 'slow').map((r) => [r.body, r.status, r.attempt])).toEqual([
      ['1', 503, 1],
      ['1', 200, 2],
      ['2', 200, 1],
    ])
    expect(scheduled(wal.stateDir, 'orders')).toEqual([])
  })

  it('pauses an unreachable target without spending attempts, while a healthy target goes on', async () => {
    // A privileged port nothing listens on (and that fetch does not block): the endpoint is down.
    configure({ down: { type: 'http', url: 'http://127.0.0.1:2/apply', timeoutMs: 500, retry: { maxAttempts: 2 } }, store: { type: 'kv' } })
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((i) => ({ key: `k${i}`, payload: put('t', i, {}) }))) })
    const child = wal.spawn(['consume', '-n', 'orders', '--json', '--drain-timeout', '1s'])
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    const deadline = Date.now() + 15_000
    while (kvItems(wal.stateDir, 'orders').length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(kvItems(wal.stateDir, 'orders')).toHaveLength(3)
    await new Promise((r) => setTimeout(r, 1500))
    child.kill('SIGTERM')
    expect(await closed).toBe(0)
    const summary = JSON.parse(out) as Summary
    const down = summary.targets.find((t) => t.target === 'down')!
    expect(down).toMatchObject({ applied: 0, deadLettered: 0, lag: 3 })
    expect(down.circuitOpened).toBeGreaterThanOrEqual(1)
    expect(summary.targets.find((t) => t.target === 'store')).toMatchObject({ applied: 3, lag: 0 })
    expect(err).toMatch(/"event":"circuit-open","target":"down"/)
    expect(deadLetters(wal.stateDir, 'orders')).toEqual([])
  })
})

describe('several targets', () => {
  it('delivers a mutation with a target override only to that target, and refuses an unknown one at produce', async () => {
    const outPath = join(wal.dir, 'audit.ndjson')
    configure({ store: { type: 'kv' }, audit: { type: 'file', path: outPath } })
    await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', JSON.stringify(put('t', 'a', {}))])
    await wal.run(['produce', '-n', 'orders', '-k', 'b', '--target', 'audit', '-p', JSON.stringify(put('t', 'b', {}))])
    const unknown = await wal.run(['produce', '-n', 'orders', '-k', 'c', '--target', 'nope', '-p', '1'])
    expect(unknown.code).toBe(4)
    expect(unknown.stderr).toMatch(/namespace "orders" has no target "nope".*its targets: store, audit/)
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets.map((t) => [t.target, t.applied, t.lag])).toEqual([
      ['store', 1, 0],
      ['audit', 2, 0],
    ])
    expect(kvItems(wal.stateDir, 'orders').map((r) => r.pk)).toEqual(['[["id","a"]]'])
    const { readFileSync } = await import('node:fs')
    expect(readFileSync(outPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key)).toEqual(['a', 'b'])
  })

  it('dead-letters once, with why, a mutation addressed to a target the namespace no longer has', async () => {
    const outPath = join(wal.dir, 'audit.ndjson')
    configure({ store: { type: 'kv' }, audit: { type: 'file', path: outPath }, gone: { type: 'kv', path: join(wal.dir, 'gone.db') } })
    await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', JSON.stringify(put('t', 'a', {}))])
    const addressed = await wal.run(['produce', '-n', 'orders', '-k', 'b', '--target', 'gone', '--json', '-p', JSON.stringify(put('t', 'b', {}))])
    const { id } = JSON.parse(addressed.stdout) as Ack
    // The target is taken out of the config before anything consumed the mutation addressed to it.
    configure({ store: { type: 'kv' }, audit: { type: 'file', path: outPath } })
    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(result.code).toBe(8)
    const summary = JSON.parse(result.stdout) as Summary
    expect(summary.targets.map((t) => [t.target, t.applied, t.deadLettered, t.lag])).toEqual([
      ['store', 1, 1, 0],
      ['audit', 1, 0, 0],
    ])
    const dead = deadLetters(wal.stateDir, 'orders')
    expect(dead).toHaveLength(1)
    expect(dead[0]).toMatchObject({ id, target: 'store', error_class: 'fatal', code: 'WAL_TARGET_UNKNOWN' })
    const shown = await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])
    expect(shown.stdout).toContain('namespace \\"orders\\" has no target \\"gone\\"')
    // Consuming again dead-letters nothing more.
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect(deadLetters(wal.stateDir, 'orders')).toHaveLength(1)
  })
})

describe('stopping and pacing', () => {
  it('on SIGTERM stops reading, finishes what is in flight, commits and exits 0; the rest waits for the next consumer', async () => {
    configure({ api: { type: 'http', url: server.url, timeoutMs: 5000 } })
    server.slow(700)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, payload: i }))) })
    const child = wal.spawn(['consume', '-n', 'orders', '--json', '--concurrency', '4'])
    let out = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.resume()
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await waitForRequests(4)
    child.kill('SIGTERM')
    expect(await closed).toBe(0)
    const stopped = JSON.parse(out) as Summary
    // Only what was in flight (4 at a time) was finished; nothing was left half-done.
    expect(stopped.targets[0]!.applied).toBe(server.received.length)
    expect(stopped.targets[0]!.applied).toBeLessThanOrEqual(12)
    expect(stopped.targets[0]!.lag).toBe(200 - stopped.targets[0]!.applied)
    server.slow(0)
    const rest = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(rest.targets[0]!.applied + stopped.targets[0]!.applied).toBe(200)
    expect(new Set(server.received.map((r) => r.body)).size).toBe(200)
  })

  it('exits 130 at once on a second signal', async () => {
    configure({ api: { type: 'http', url: server.url, timeoutMs: 120_000 } })
    // The request in flight takes a minute: a consumer that ignored the second signal would wait for it.
    server.slow(60_000)
    await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])
    const child = wal.spawn(['consume', '-n', 'orders'])
    child.stdout!.resume()
    child.stderr!.resume()
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await waitForRequests(1)
    const started = Date.now()
    child.kill('SIGINT')
    await new Promise((resolve) => setTimeout(resolve, 100))
    child.kill('SIGINT')
    expect(await closed).toBe(130)
    expect(Date.now() - started).toBeLessThan(30_000)
  })

  it('keeps to --rate', async () => {
    await wal.run(['produce'], { input: ndjson(Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, payload: put('t', i, {}) }))) })
    const started = Date.now()
    const result = await wal.run(['consume', '--until-idle', '--rate', '20/s', '--json'])
    const elapsed = Date.now() - started
    expect((JSON.parse(result.stdout) as Summary).targets[0]!.applied).toBe(60)
    // A burst of 20, then 40 more at 20 per second.
    expect(elapsed).toBeGreaterThanOrEqual(1900)
  })
})

async function waitForRequests(n: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (server.received.length < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} requests arrived`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('delays', () => {
  it('delivers a delay not before its time, without holding up other keys', async () => {
    const produced = Date.now()
    await wal.run(['produce', '-k', 'later', '--delay', '8s', '-p', JSON.stringify(put('t', 'later', {}))])
    await wal.run(['produce', '-k', 'now', '-p', JSON.stringify(put('t', 'now', {}))])
    const child = wal.spawn(['consume'])
    child.stdout!.resume()
    child.stderr!.resume()
    const closed = new Promise((resolve) => child.on('close', resolve))
    // When each row first showed up in the store, and which rows were there together.
    const seen = new Map<string, number>()
    const snapshots: string[][] = []
    try {
      await waitFor(
        () => {
          const rows = kvItems(wal.stateDir).map((row) => row.pk)
          snapshots.push(rows)
          for (const pk of rows) if (!seen.has(pk)) seen.set(pk, Date.now())
          return seen.size === 2
        },
        { timeoutMs: 60_000 },
      )
    } finally {
      // Also when a read fails: a consumer left running would outlive the test run.
      child.kill('SIGTERM')
      await closed
    }
    // 'now' was applied while 'later' still waited: its delay held up nothing behind it.
    expect(snapshots).toContainEqual(['[["id","now"]]'])
    // And 'later' not before its time. (How soon after is a figure for bench/latency.js, not a test.)
    expect(seen.get('[["id","later"]]')! - produced).toBeGreaterThanOrEqual(7900)
  })

  it('keeps a 2-day delay across restarts and delivers it when the time comes', async () => {
    await wal.run(['produce', '-k', 'd', '--delay', '2d', '-p', JSON.stringify(put('t', 'd', {}))])
    for (const offset of ['0s', '1d', '47h59m']) {
      const r = JSON.parse((await wal.run(['consume', '--until-idle', '--json'], { env: { WAL_CLOCK_OFFSET: offset } })).stdout) as Summary
      expect(r.targets[0]!.applied).toBe(0)
      expect(kvItems(wal.stateDir)).toEqual([])
    }
    expect(scheduled(wal.stateDir)).toHaveLength(1)
    const due = JSON.parse((await wal.run(['consume', '--until-idle', '--json'], { env: { WAL_CLOCK_OFFSET: '2d1m' } })).stdout) as Summary
    expect(due.targets[0]!.applied).toBe(1)
    expect(kvItems(wal.stateDir)).toHaveLength(1)
    expect(scheduled(wal.stateDir)).toEqual([])
  })
})
