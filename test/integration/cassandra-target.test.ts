/**
 * The Cassandra target against the real test Cassandra: end state equal to log order whatever the
 * apply order, DLQ replays that never overwrite newer data, a pause (not the DLQ) while Cassandra is
 * unreachable, pages of ready mutations applied at once (a bad one dead-lettered alone, each key's order
 * kept), and clear errors for a wrong configuration.
 */
import type { Client } from 'cassandra-driver'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { cassandraClient, createCassandraProxy, createKeyspace, dropKeyspace, writeCassandraConfig, type CassandraProxy } from '../helpers/cassandra.js'
import { deadLetters, scheduled } from '../helpers/state.js'
import { makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let client: Client
let keyspace: string
let wal: Sandbox
let proxy: CassandraProxy | undefined

beforeAll(async () => {
  client = cassandraClient()
  await client.connect()
  keyspace = await createKeyspace(client, 'target')
  await client.execute(`CREATE TABLE ${keyspace}.items (id int PRIMARY KEY, a text, b int)`)
  await client.execute(`CREATE TABLE ${keyspace}.events (user int, ts int, what text, PRIMARY KEY (user, ts))`)
})
afterAll(async () => {
  await dropKeyspace(client, keyspace)
  await client.shutdown()
})
beforeEach(async () => {
  wal = makeSandbox()
  await client.execute(`TRUNCATE ${keyspace}.items`)
  await client.execute(`TRUNCATE ${keyspace}.events`)
})
afterEach(async () => {
  await proxy?.remove()
  proxy = undefined
  wal.cleanup()
})

type Row = Record<string, unknown>

async function rows(query: string): Promise<Row[]> {
  const result = await client.execute(query)
  return result.rows.map((r) => Object.fromEntries(result.columns.map((c) => [c.name, r.get(c.name)])))
}

const sorted = (list: Row[]): Row[] => [...list].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))

/** A small deterministic PRNG, so a failing stream can be reproduced. */
function random(seed: number): () => number {
  let s = seed
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

type Op = Record<string, unknown>

/** Operations over few rows, under mutation keys unrelated to the rows: the same row is written from many keys at once. */
function stream(count: number, seed: number): Array<{ key: string; payload: Op }> {
  const next = random(seed)
  const pick = <T,>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!
  const ids = [0, 1, 2, 3, 4, 5, 6, 7]
  const itemPut = (): Op => {
    const item: Record<string, unknown> = {}
    if (next() < 0.7) item.a = next() < 0.2 ? 'x'.repeat(300) : `a${Math.floor(next() * 1000)}`
    if (next() < 0.7) item.b = Math.floor(next() * 1000)
    return { op: 'put', table: 'items', key: { id: pick(ids) }, item }
  }
  const itemDelete = (): Op => ({ op: 'delete', table: 'items', key: { id: pick(ids) } })
  const eventPut = (): Op => ({ op: 'put', table: 'events', key: { user: pick([0, 1, 2]), ts: pick([0, 1, 2, 3]) }, item: { what: `w${Math.floor(next() * 1000)}` } })
  const out: Array<{ key: string; payload: Op }> = []
  for (let i = 0; i < count; i++) {
    const r = next()
    let payload: Op
    if (r < 0.35) payload = itemPut()
    else if (r < 0.5) payload = itemDelete()
    else if (r < 0.6) payload = eventPut()
    else if (r < 0.65) payload = { op: 'delete', table: 'events', key: { user: pick([0, 1, 2]) }, scope: 'partition' }
    else payload = { op: 'batch', parts: Array.from({ length: 2 + Math.floor(next() * 3) }, () => pick([itemPut, itemPut, itemDelete, eventPut])()) }
    out.push({ key: `k${Math.floor(next() * 12)}`, payload })
  }
  return out
}

/** The state after applying the operations one after the other, in log order. */
function expectedState(input: Array<{ payload: Op }>): { items: Row[]; events: Row[] } {
  const items = new Map<number, { a: unknown; b: unknown }>()
  const events = new Map<string, { user: number; ts: number; what: unknown }>()
  const apply = (op: Op): void => {
    const key = op.key as Record<string, number>
    if (op.op === 'batch') return (op.parts as Op[]).forEach(apply)
    if (op.table === 'items') {
      if (op.op === 'delete') items.delete(key.id!)
      else items.set(key.id!, { a: null, b: null, ...items.get(key.id!), ...(op.item as object) })
    } else if (op.op === 'delete') {
      for (const k of [...events.keys()]) if (k.startsWith(`${key.user}/`)) events.delete(k)
    } else events.set(`${key.user}/${key.ts}`, { user: key.user!, ts: key.ts!, what: (op.item as { what: string }).what })
  }
  input.forEach((m) => apply(m.payload))
  return {
    items: sorted([...items].map(([id, v]) => ({ id, a: v.a ?? null, b: v.b ?? null }))),
    events: sorted([...events.values()]),
  }
}

async function consumeUntilIdle(args: string[] = []): Promise<{ code: number | null; summary: Record<string, number>; stderr: string }> {
  const result = await wal.run(['consume', '-n', 'ns', '--until-idle', '--json', ...args])
  // 8: finished, having dead-lettered some mutations (the summary is printed all the same).
  const summary = result.code === 0 || result.code === 8 ? (JSON.parse(result.stdout) as { targets: Array<Record<string, number>> }).targets[0]! : {}
  return { code: result.code, summary, stderr: result.stderr }
}

describe('the Cassandra target', () => {
  it('ends in exactly the state of applying the stream in log order, with concurrency and injected retries', async () => {
    proxy = await createCassandraProxy()
    writeCassandraConfig(wal.cwd, {
      keyspace,
      contactPoints: [proxy.address],
      // A tight timeout behind a jittery proxy: many writes time out on the client (and are retried)
      // while the first try still lands later, out of order with newer writes of the same row.
      target: { timeoutMs: 60, maxBatchBytes: 400, concurrency: 32, retry: { maxAttempts: 100, initialBackoffMs: 5, maxBackoffMs: 50 } },
    })
    const input = stream(600, 42)
    const produced = await wal.run(['produce', '-n', 'ns'], { input: ndjson(input) })
    expect(produced.code).toBe(0)
    await proxy.addLatency(20, 45)
    const { code, summary, stderr } = await consumeUntilIdle()
    expect(code, stderr).toBe(0)
    expect(summary).toMatchObject({ applied: 600, deadLettered: 0, lag: 0 })
    // The retries really happened (else this test would prove nothing about them).
    expect(summary.retried).toBeGreaterThan(0)
    const expected = expectedState(input)
    expect(sorted(await rows(`SELECT id, a, b FROM ${keyspace}.items`))).toEqual(expected.items)
    expect(sorted(await rows(`SELECT user, ts, what FROM ${keyspace}.events`))).toEqual(expected.events)
  })

  it('leaves newer data in place when an old DLQ entry is replayed after newer writes', async () => {
    writeCassandraConfig(wal.cwd, { keyspace, target: { retry: { maxAttempts: 2, initialBackoffMs: 10 } } })
    // The old write fails for good (a value that does not fit its column) and goes to the DLQ.
    await wal.run(['produce', '-n', 'ns', '-k', 'item-1', '-p', JSON.stringify({ op: 'put', table: 'items', key: { id: 1 }, item: { a: 'old', b: 'one' } })])
    let run = await consumeUntilIdle()
    expect(run.code).toBe(8)
    expect(run.summary).toMatchObject({ applied: 0, deadLettered: 1 })
    const [dead] = deadLetters(wal.stateDir, 'ns')
    expect(dead).toMatchObject({ code: 'CASSANDRA_VALUE_INVALID', error_class: 'fatal' })
    // A newer write of the same row lands.
    await wal.run(['produce', '-n', 'ns', '-k', 'item-1', '-p', JSON.stringify({ op: 'put', table: 'items', key: { id: 1 }, item: { a: 'new' } })])
    run = await consumeUntilIdle()
    expect(run.summary).toMatchObject({ applied: 1 })
    // The old entry, fixed by hand (as an operator would after exporting it), is replayed.
    const envelope = JSON.parse(dead!.envelope) as { payload: { item: Record<string, unknown> } }
    envelope.payload.item.b = 1
    const reproduced = await wal.run(['produce', '-n', 'ns'], { input: ndjson([envelope]) })
    expect(reproduced.code, reproduced.stderr).toBe(0)
    run = await consumeUntilIdle()
    expect(run.summary).toMatchObject({ applied: 1, deadLettered: 0 })
    // Cell by cell, the newer write wins: a keeps the newer value, b (never written since) takes the old one.
    expect(await rows(`SELECT id, a, b FROM ${keyspace}.items`)).toEqual([{ id: 1, a: 'new', b: 1 }])

    // And the plain `dlq replay` path: a mutation dead-lettered for an unknown table, replayed once the
    // table exists, after a newer delete of its row.
    await wal.run(['produce', '-n', 'ns', '-k', 'late', '-p', JSON.stringify({ op: 'put', table: 'late', key: { id: 7 }, item: { v: 'old' } })])
    run = await consumeUntilIdle()
    expect(run.summary).toMatchObject({ deadLettered: 1 })
    expect(deadLetters(wal.stateDir, 'ns').at(-1)).toMatchObject({ code: 'CASSANDRA_TABLE_UNKNOWN' })
    await client.execute(`CREATE TABLE ${keyspace}.late (id int PRIMARY KEY, v text)`)
    await wal.run(['produce', '-n', 'ns', '-k', 'late', '-p', JSON.stringify({ op: 'put', table: 'late', key: { id: 8 }, item: { v: 'new' } })])
    await wal.run(['produce', '-n', 'ns', '-k', 'late', '-p', JSON.stringify({ op: 'delete', table: 'late', key: { id: 7 } })])
    expect((await consumeUntilIdle()).summary).toMatchObject({ applied: 2 })
    const replayed = await wal.run(['dlq', 'replay', '-n', 'ns', '--where', 'code == "CASSANDRA_TABLE_UNKNOWN"'])
    expect(replayed.code, replayed.stderr).toBe(0)
    expect((await consumeUntilIdle()).summary).toMatchObject({ applied: 1, deadLettered: 0 })
    // The delete was newer than the replayed put: the row stays deleted.
    expect(await rows(`SELECT id, v FROM ${keyspace}.late`)).toEqual([{ id: 8, v: 'new' }])
  })

  it('pauses while Cassandra is unreachable, dead-letters nothing for it, and applies everything once it is back', async () => {
    proxy = await createCassandraProxy()
    // Two attempts only: a mutation charged for the outage would reach the DLQ at once.
    writeCassandraConfig(wal.cwd, { keyspace, contactPoints: [proxy.address], target: { rate: '150/s', retry: { maxAttempts: 2, initialBackoffMs: 10 } } })
    const input = Array.from({ length: 300 }, (_, i) => ({ key: `k${i % 30}`, payload: { op: 'put', table: 'items', key: { id: i }, item: { a: `v${i}` } } }))
    expect((await wal.run(['produce', '-n', 'ns'], { input: ndjson(input) })).code).toBe(0)
    const child = wal.spawn(['consume', '-n', 'ns', '--until-idle', '--json'])
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    const count = async (): Promise<number> => Number((await client.execute(`SELECT count(*) AS n FROM ${keyspace}.items`)).first().get('n'))
    await waitFor(async () => (await count()) > 20, { timeoutMs: 30_000 })
    await proxy.setEnabled(false)
    await waitFor(() => err.includes('"event":"circuit-open"'), { timeoutMs: 30_000 })
    const during = await count()
    // Held for a while: nothing moves, nothing is dead-lettered.
    await new Promise((resolve) => setTimeout(resolve, 2000))
    expect(await count()).toBe(during)
    expect(during).toBeLessThan(300)
    await proxy.setEnabled(true)
    expect(await closed, err).toBe(0)
    expect(JSON.parse(out).targets[0]).toMatchObject({ applied: 300, deadLettered: 0, lag: 0 })
    expect(JSON.parse(out).targets[0].circuitOpened).toBeGreaterThanOrEqual(1)
    expect(err).toMatch(/"event":"circuit-open","target":"db","code":"CASSANDRA_NO_HOST"/)
    expect(deadLetters(wal.stateDir, 'ns')).toEqual([])
    expect(await count()).toBe(300)
  })

  it('applies a page of many keys at once, every row exactly as written', async () => {
    writeCassandraConfig(wal.cwd, { keyspace, target: { concurrency: 16 } })
    const input = Array.from({ length: 2500 }, (_, i) => ({ key: `row-${i}`, payload: { op: 'put', table: 'items', key: { id: i }, item: { a: `v${i}`, b: i * 7 } } }))
    expect((await wal.run(['produce', '-n', 'ns'], { input: ndjson(input) })).code).toBe(0)
    const { code, summary, stderr } = await consumeUntilIdle()
    expect(code, stderr).toBe(0)
    expect(summary).toMatchObject({ applied: 2500, deadLettered: 0, retried: 0, lag: 0 })
    const landed = await rows(`SELECT id, a, b FROM ${keyspace}.items`)
    expect(landed).toHaveLength(2500)
    expect(sorted(landed)).toEqual(sorted(input.map((m, i) => ({ id: i, a: `v${i}`, b: i * 7 }))))
  })

  it('dead-letters a bad mutation of a page alone, and applies its neighbours once', async () => {
    writeCassandraConfig(wal.cwd, { keyspace, target: { retry: { maxAttempts: 2, initialBackoffMs: 10 } } })
    const good = (i: number): { key: string; payload: Op } => ({ key: `row-${i}`, payload: { op: 'put', table: 'items', key: { id: i }, item: { a: `v${i}` } } })
    // A value the driver refuses only when the statement is sent (a text into an int column), in the
    // middle of a page: some neighbours have landed by then, and all of them are applied again alone.
    const first = [...Array.from({ length: 300 }, (_, i) => good(i)), { key: 'bad-value', payload: { op: 'put', table: 'items', key: { id: 1000 }, item: { b: 'one' } } }, ...Array.from({ length: 300 }, (_, i) => good(300 + i))]
    expect((await wal.run(['produce', '-n', 'ns'], { input: ndjson(first) })).code).toBe(0)
    let run = await consumeUntilIdle()
    expect(run.code, run.stderr).toBe(8)
    expect(run.summary).toMatchObject({ applied: 600, deadLettered: 1, lag: 0 })
    expect(deadLetters(wal.stateDir, 'ns').map((d) => [d.key, d.code])).toEqual([['bad-value', 'CASSANDRA_VALUE_INVALID']])

    // Refused before anything is sent: an unknown column, a number the column cannot hold exactly, and
    // a payload that is not an operation, each among good mutations.
    const second = [
      ...Array.from({ length: 100 }, (_, i) => good(600 + i)),
      { key: 'bad-column', payload: { op: 'put', table: 'items', key: { id: 1001 }, item: { nope: 1 } } },
      ...Array.from({ length: 100 }, (_, i) => good(700 + i)),
      { key: 'bad-operation', payload: { hello: 'world' } },
    ]
    const third = Array.from({ length: 100 }, (_, i) => good(800 + i))
    // 2^53 + 1, which a double holds only rounded: written as a literal, not through JSON.stringify.
    const badNumber = '{"key":"bad-number","payload":{"op":"put","table":"items","key":{"id":1002},"item":{"b":9007199254740993}}}\n'
    expect((await wal.run(['produce', '-n', 'ns'], { input: ndjson(second) + badNumber + ndjson(third) })).code).toBe(0)
    run = await consumeUntilIdle()
    expect(run.code, run.stderr).toBe(8)
    expect(run.summary).toMatchObject({ applied: 300, deadLettered: 3, lag: 0 })
    // Applied alone, different keys run side by side: the DLQ's order is not the log's.
    const dead = deadLetters(wal.stateDir, 'ns')
      .slice(1)
      .map((d) => [d.key, d.error_class, d.code])
      .sort()
    expect(dead).toEqual([
      ['bad-column', 'fatal', 'CASSANDRA_COLUMN_UNKNOWN'],
      ['bad-number', 'fatal', 'NUMBER_NOT_EXACT'],
      ['bad-operation', 'fatal', expect.any(String)],
    ])
    const landed = await rows(`SELECT id, a, b FROM ${keyspace}.items`)
    expect(sorted(landed)).toEqual(sorted(Array.from({ length: 900 }, (_, i) => ({ id: i, a: `v${i}`, b: null }))))
  })

  it('keeps the order of each key when a page holds many mutations of it', async () => {
    writeCassandraConfig(wal.cwd, { keyspace, target: { concurrency: 64 } })
    const next = random(7)
    // Each key owns one row and one events partition; its mutations follow one another in the page.
    const input: Array<{ key: string; payload: Op }> = []
    for (let round = 0; round < 40; round++) {
      for (let id = 0; id < 20; id++) {
        const r = next()
        const item: Op = next() < 0.5 ? { a: `r${round}` } : { a: `r${round}`, b: round }
        let payload: Op
        if (r < 0.5) payload = { op: 'put', table: 'items', key: { id }, item }
        else if (r < 0.65) payload = { op: 'delete', table: 'items', key: { id } }
        else if (r < 0.8) payload = { op: 'put', table: 'events', key: { user: id, ts: round % 3 }, item: { what: `r${round}` } }
        else if (r < 0.85) payload = { op: 'delete', table: 'events', key: { user: id }, scope: 'partition' }
        else payload = { op: 'batch', parts: [{ op: 'put', table: 'items', key: { id }, item: { b: round } }, { op: 'put', table: 'events', key: { user: id, ts: 3 }, item: { what: `b${round}` } }] }
        input.push({ key: `owner-${id}`, payload })
      }
    }
    expect((await wal.run(['produce', '-n', 'ns'], { input: ndjson(input) })).code).toBe(0)
    const { code, summary, stderr } = await consumeUntilIdle()
    expect(code, stderr).toBe(0)
    expect(summary).toMatchObject({ applied: 800, deadLettered: 0, lag: 0 })
    const expected = expectedState(input)
    expect(sorted(await rows(`SELECT id, a, b FROM ${keyspace}.items`))).toEqual(expected.items)
    expect(sorted(await rows(`SELECT user, ts, what FROM ${keyspace}.events`))).toEqual(expected.events)
  })

  it('applies a batch too large for one logged batch part by part, and says so in wal explain', async () => {
    writeCassandraConfig(wal.cwd, { keyspace, target: { maxBatchBytes: 100 } })
    const big = { op: 'batch', parts: [0, 1, 2].map((id) => ({ op: 'put', table: 'items', key: { id }, item: { a: 'y'.repeat(60) } })) }
    const small = { op: 'batch', parts: [{ op: 'put', table: 'items', key: { id: 10 }, item: { b: 1 } }, { op: 'put', table: 'events', key: { user: 1, ts: 1 }, item: { what: 'x' } }] }
    const acks = await wal.run(['produce', '-n', 'ns', '--json'], { input: ndjson([{ key: 'big', payload: big }, { key: 'small', payload: small }]) })
    const [bigAck, smallAck] = acks.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string })
    expect((await consumeUntilIdle()).summary).toMatchObject({ applied: 2 })
    expect(sorted(await rows(`SELECT id, a, b FROM ${keyspace}.items`))).toEqual(
      sorted([...[0, 1, 2].map((id) => ({ id, a: 'y'.repeat(60), b: null })), { id: 10, a: null, b: 1 }]),
    )
    const explainBig = await wal.run(['explain', bigAck!.id, '--json'])
    expect(JSON.parse(explainBig.stdout).targets[0]).toMatchObject({ target: 'db', status: 'applied', plan: expect.stringMatching(/^3 parts applied one after the other/) })
    const explainSmall = await wal.run(['explain', smallAck!.id])
    expect(explainSmall.stdout).toMatch(/2 parts in one logged batch/)
  })

  it('spreads delayed deletes over deleteJitterMs, and leaves delayed puts on time', async () => {
    writeCassandraConfig(wal.cwd, { keyspace, target: { deleteJitterMs: 3_600_000 } })
    const at = new Date(Date.now() + 86_400_000).toISOString()
    const deletes = Array.from({ length: 20 }, (_, i) => ({ key: `d${i}`, payload: { op: 'delete', table: 'items', key: { id: i } } }))
    const puts = Array.from({ length: 5 }, (_, i) => ({ key: `p${i}`, payload: { op: 'put', table: 'items', key: { id: 100 + i }, item: {} } }))
    expect((await wal.run(['produce', '-n', 'ns', '--at', at], { input: ndjson([...deletes, ...puts]) })).code).toBe(0)
    expect((await consumeUntilIdle()).summary).toMatchObject({ applied: 0, scheduled: 25 })
    const due = scheduled(wal.stateDir, 'ns')
    const atMs = Date.parse(at)
    const deleteDue = due.filter((d) => d.key.startsWith('d')).map((d) => d.due_at - atMs)
    expect(deleteDue.every((ms) => ms >= 0 && ms <= 3_600_000)).toBe(true)
    // Spread, not bunched: 20 random offsets in an hour are rarely within a minute of each other.
    expect(Math.max(...deleteDue) - Math.min(...deleteDue)).toBeGreaterThan(60_000)
    expect(due.filter((d) => d.key.startsWith('p')).map((d) => d.due_at)).toEqual(puts.map(() => atMs))
  })

  it('creates the keyspace and declared tables with ns init, and refuses to start when a declared table differs', async () => {
    const fresh = `wal_init_${Date.now().toString(36)}`
    const tables = { users: { columns: { id: 'int', name: 'text', tags: 'set<text>' }, partitionKey: ['id'] }, visits: { columns: { user: 'int', at: 'timestamp', page: 'text' }, partitionKey: ['user'], clusteringKey: ['at'] } }
    writeCassandraConfig(wal.cwd, { keyspace: fresh, target: { replication: { class: 'SimpleStrategy', replication_factor: 1 }, tables } })
    try {
      const init = await wal.run(['ns', 'init', 'ns', '--json'])
      expect(init.code, init.stderr).toBe(0)
      expect(JSON.parse(init.stdout).parts.slice(1)).toMatchObject([
        { role: 'keyspace', name: fresh, status: 'created' },
        { role: 'table', name: `${fresh}.users`, status: 'created' },
        { role: 'table', name: `${fresh}.visits`, status: 'created' },
      ])
      const again = await wal.run(['ns', 'init', 'ns', '--json'])
      expect(JSON.parse(again.stdout).parts.slice(1).map((p: { status: string }) => p.status)).toEqual(['exists', 'exists', 'exists'])
      await wal.run(['produce', '-n', 'ns', '-k', 'u1', '-p', JSON.stringify({ op: 'put', table: 'users', key: { id: 1 }, item: { name: 'Ada', tags: ['x'] } })])
      expect((await consumeUntilIdle()).summary).toMatchObject({ applied: 1 })
      expect(await rows(`SELECT id, name FROM ${fresh}.users`)).toEqual([{ id: 1, name: 'Ada' }])

      // The config now declares a column the table lacks: the consumer does not start.
      writeCassandraConfig(wal.cwd, { keyspace: fresh, target: { tables: { ...tables, users: { ...tables.users, columns: { ...tables.users.columns, email: 'text' } } } } })
      const refused = await wal.run(['consume', '-n', 'ns', '--until-idle', '--json'])
      expect(refused.code).toBe(3)
      expect(JSON.parse(refused.stderr.trim().split('\n').at(-1)!).error).toMatchObject({ code: 'WAL_TARGET_SCHEMA', message: expect.stringContaining(`table ${fresh}.users has no column "email"`) })
      const report = await wal.run(['ns', 'init', 'ns'])
      expect(report.stdout).toContain(`warning: ${fresh}.users differs from the config: table ${fresh}.users has no column "email"`)
    } finally {
      await dropKeyspace(client, fresh)
    }
  })

  it('stops with exit 3 and names the problem for a wrong data center, keyspace or TLS setting', async () => {
    const start = async (): Promise<{ code: number | null; error: { code: string; message: string } }> => {
      const result = await wal.run(['consume', '-n', 'ns', '--until-idle', '--json'])
      return { code: result.code, error: (JSON.parse(result.stderr.trim().split('\n').at(-1)!) as { error: { code: string; message: string } }).error }
    }
    writeCassandraConfig(wal.cwd, { keyspace, cluster: { localDataCenter: 'dc-typo' } })
    await wal.run(['produce', '-n', 'ns', '-k', 'a', '-p', '{"op":"put","table":"items","key":{"id":1},"item":{}}'])

    let run = await start()
    expect(run.code).toBe(3)
    expect(run.error).toMatchObject({ code: 'WAL_TARGET_DATACENTER', message: expect.stringContaining(`localDataCenter was configured as 'dc-typo', but only found hosts in data centers: [${endpoints.cassandra.localDataCenter}]`) })

    writeCassandraConfig(wal.cwd, { keyspace: 'no_such_keyspace' })
    run = await start()
    expect(run.code).toBe(3)
    expect(run.error).toMatchObject({ code: 'WAL_TARGET_SCHEMA', message: expect.stringMatching(/keyspace "no_such_keyspace" does not exist/) })

    writeCassandraConfig(wal.cwd, { keyspace, cluster: { tls: true } })
    run = await start()
    expect(run.code).toBe(3)
    expect(run.error).toMatchObject({ code: 'WAL_TARGET_TLS', message: expect.stringMatching(/TLS handshake failed/) })

    writeCassandraConfig(wal.cwd, { keyspace, cluster: { tls: { ca: 'missing-ca.pem' } } })
    run = await start()
    expect(run.code).toBe(3)
    expect(run.error).toMatchObject({ code: 'WAL_TARGET_TLS', message: expect.stringMatching(/cannot read .*missing-ca\.pem: ENOENT/) })

    // Nothing listens there: not a configuration error, but unreachable (exit 5), and nothing is lost.
    writeCassandraConfig(wal.cwd, { keyspace, contactPoints: ['127.0.0.1:1'] })
    run = await start()
    expect(run.code).toBe(5)
    expect(run.error.code).toBe('WAL_TARGET_UNAVAILABLE')

    // Fixed: the mutation that waited in the log is applied.
    writeCassandraConfig(wal.cwd, { keyspace })
    expect((await consumeUntilIdle()).summary).toMatchObject({ applied: 1 })
    expect(await rows(`SELECT id FROM ${keyspace}.items`)).toEqual([{ id: 1 }])
  })
})
