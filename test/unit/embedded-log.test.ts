import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { decodeEnvelope, type LogRecord, type Mutation } from '../../src/lib/envelope/envelope.js'
import { ConfigError, NotFoundError } from '../../src/lib/errors.js'
import { EmbeddedLog, embeddedLogPath, listEmbeddedLogs } from '../../src/lib/log/embedded/embedded-log.js'
import { LogWriter, toRow } from '../../src/lib/log/embedded/writer.js'
import { partitionForKey } from '../../src/lib/log/partitioner.js'

let dir: string
let log: EmbeddedLog
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wal-embedded-'))
  log = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 4, create: true })
})
afterEach(async () => {
  await log.close()
  rmSync(dir, { recursive: true, force: true })
})

function mutation(key: string, payload: unknown, extra: Record<string, unknown> = {}): Mutation {
  return decodeEnvelope({ key, payload, ...extra }, { namespace: 'ns', nowMs: Date.now() })
}

async function readAll(options: Partial<Parameters<EmbeddedLog['read']>[0]> = {}): Promise<LogRecord[]> {
  const marks = await log.marks()
  const out: LogRecord[] = []
  for await (const r of log.read({ from: new Map(marks.map((m) => [m.partition, m.low])), until: new Map(marks.map((m) => [m.partition, m.high])), ...options })) out.push(r)
  return out
}

describe('the embedded log', () => {
  it('assigns offsets per partition by key and reads records back in append order', async () => {
    const results = await log.append(['a', 'b', 'a', 'c', 'a'].map((k, i) => mutation(k, { i })))
    expect(results.map((r) => r.partition)).toEqual(['a', 'b', 'a', 'c', 'a'].map((k) => partitionForKey(k, 4)))
    // Per partition, offsets count up from 0 in append order.
    const perPartition = new Map<number, number[]>()
    for (const r of results) perPartition.set(r.partition, [...(perPartition.get(r.partition) ?? []), r.offset])
    for (const offsets of perPartition.values()) expect(offsets).toEqual(offsets.map((_, i) => i))
    const records = await readAll()
    expect(records.map((r) => JSON.parse((r.payload as { json: string }).json).i)).toEqual([0, 1, 2, 3, 4])
    expect(records[0]).toMatchObject({ namespace: 'ns', key: 'a', partition: results[0]!.partition, offset: 0 })
  })

  it('commits appends made in the same tick as one transaction (group commit)', async () => {
    const before = log.commits
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append([mutation(`k${i}`, i)])))
    expect(log.commits - before).toBe(1)
    expect((await log.info()).records).toBe(20)
  })

  it('writes an idempotency key once and returns the original position for repeats', async () => {
    const [first] = await log.append([mutation('k', 1, { idempotencyKey: 'x' })])
    const [again, other, inBatch] = await log.append([
      mutation('k', 2, { idempotencyKey: 'x' }),
      mutation('k', 3, { idempotencyKey: 'y' }),
      mutation('k', 4, { idempotencyKey: 'y' }),
    ])
    expect(again).toEqual({ ...first, duplicate: true })
    expect(other!.duplicate).toBe(false)
    expect(inBatch).toEqual({ ...other, duplicate: true })
    expect((await readAll()).map((r) => (r.payload as { json: string }).json)).toEqual(['1', '3'])
  })

  it('keeps bytes, headers, delays, failures and timestamps', async () => {
    const m = mutation('k', 'AP8=', {
      payloadEncoding: 'base64',
      headers: { h: 'v' },
      notBefore: 1_900_000_000_000,
      createdAt: 1_600_000_000_000,
      target: 't',
      attempts: 2,
      failures: [{ at: 1_600_000_000_500, target: 't', errorClass: 'retryable', message: 'm', attempt: 2 }],
    })
    await log.append([m])
    const [r] = await readAll()
    expect(r).toMatchObject({ ...m, payload: { encoding: 'base64', bytes: new Uint8Array([0, 255]) } })
  })

  it('finds offsets by append time', async () => {
    await log.append([mutation('a', 1), mutation('b', 2)])
    const marks = await log.marks()
    expect(await log.offsetsForTime(0)).toEqual(new Map(marks.map((m) => [m.partition, m.low])))
    expect(await log.offsetsForTime(Date.now() + 60_000)).toEqual(new Map(marks.map((m) => [m.partition, m.high])))
  })

  it('finds, for any time, the first offset of each partition appended then or later, with the clock stepping back and partitions left empty', async () => {
    const T0 = 1_800_000_000_000
    const now = vi.spyOn(Date, 'now')
    try {
      // 40 commits 10 ms apart, the clock stepping back 25 ms once; keys chosen so one partition stays empty.
      const keys = Array.from({ length: 50 }, (_, i) => `k${i}`)
        .filter((k) => partitionForKey(k, 4) !== 3)
        .slice(0, 5)
      for (let i = 0; i < 40; i++) {
        now.mockReturnValue(i === 20 ? T0 + 10 * i - 25 : T0 + 10 * i)
        await log.append(Array.from({ length: 1 + (i % 3) }, (_, j) => mutation(keys[(i + j) % keys.length]!, i)))
      }
    } finally {
      now.mockRestore()
    }
    const records = await readAll()
    const marks = await log.marks()
    expect(marks.find((m) => m.partition === 3)).toMatchObject({ low: 0, high: 0 })
    for (let t = T0 - 5; t <= T0 + 400; t += 5) {
      const expected = new Map(
        marks.map((m) => [m.partition, Math.min(...records.filter((r) => r.partition === m.partition && r.appendedAtMs >= t).map((r) => r.offset), m.high)]),
      )
      expect(await log.offsetsForTime(t), `t = T0 + ${t - T0}`).toEqual(expected)
    }
  })

  it('reads within bounds and stops a follow when aborted', async () => {
    await log.append(Array.from({ length: 10 }, (_, i) => mutation('same', i)))
    const p = partitionForKey('same', 4)
    const window = []
    for await (const r of log.read({ from: new Map([[p, 3]]), until: new Map([[p, 6]]) })) window.push(r.offset)
    expect(window).toEqual([3, 4, 5])

    const controller = new AbortController()
    const seen: number[] = []
    const following = (async () => {
      for await (const r of log.read({ from: new Map([[p, 8]]), follow: true, signal: controller.signal })) {
        seen.push(r.offset)
        if (r.offset === 10) controller.abort()
      }
    })()
    const writer = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 4, create: true })
    await writer.append([mutation('same', 'late')])
    await writer.close()
    await following
    expect(seen).toEqual([8, 9, 10])
  })

  it('reads a page of records from given positions as read gives them, across scan pages and partitions left out', async () => {
    await log.append(Array.from({ length: 1300 }, (_, i) => mutation(`k${i % 37}`, { i })))
    const marks = await log.marks()
    // Partition 0 from its third record, partition 1 from its start, partitions 2 and 3 not asked for.
    const from = new Map([
      [marks[0]!.partition, 2],
      [marks[1]!.partition, 0],
    ])
    const all: LogRecord[] = []
    for await (const r of log.read({ from })) all.push(r)
    expect(all.length).toBeGreaterThan(600)
    const page = await log.readPage(from, 600)
    expect(page).toEqual(all.slice(0, 600))
    // The next page starts where the first ended.
    const next = new Map(from)
    for (const r of page) next.set(r.partition, r.offset + 1)
    expect(await log.readPage(next, 10_000)).toEqual(all.slice(600))
    expect(await log.readPage(new Map([[marks[0]!.partition, marks[0]!.high]]), 10)).toEqual([])
  })

  it('reads on from where the last page ended, also records appended since, and from any other positions', async () => {
    await log.append(Array.from({ length: 900 }, (_, i) => mutation(`k${i % 23}`, { i })))
    const everything = async (from: Map<number, number>): Promise<LogRecord[]> => {
      const out: LogRecord[] = []
      for await (const r of log.read({ from })) out.push(r)
      return out
    }
    const start = new Map((await log.marks()).map((m) => [m.partition, 0]))
    const all = await everything(start)
    const position = new Map(start)
    const pages: LogRecord[] = []
    for (;;) {
      const page = await log.readPage(position, 250)
      if (page.length === 0) break
      for (const r of page) position.set(r.partition, r.offset + 1)
      pages.push(...page)
    }
    expect(pages).toEqual(all)
    // Appended after the last page: the next page holds them.
    await log.append(Array.from({ length: 40 }, (_, i) => mutation(`k${i % 23}`, { late: i })))
    const late = await log.readPage(position, 1000)
    expect(late.map((r) => r.payload)).toEqual((await everything(position)).map((r) => r.payload))
    expect(late).toHaveLength(40)
    // Started over (a consumer that lost a partition and took it back): read again from there.
    const again = new Map(start)
    expect(await log.readPage(again, 100)).toEqual(all.slice(0, 100))
  })

  it('reads a record another connection appends while a read works out where to start', async () => {
    // Every partition caught up: the start is the last seq. A record committed by another process
    // between that look-up and the per-partition ones must still be read, not passed by.
    await log.append(Array.from({ length: 40 }, (_, i) => mutation(`k${i % 7}`, { i })))
    const marks = await log.marks()
    const other = new DatabaseSync(embeddedLogPath(dir, 'ns'), { timeout: 5000 })
    const writer = new LogWriter(other)
    const internals = log as unknown as { statement(sql: string): StatementSync }
    const statement = internals.statement.bind(log)
    let appended = 0
    const spy = vi.spyOn(internals, 'statement').mockImplementation((sql: string) => {
      const prepared = statement(sql)
      if (!sql.includes('max(seq)')) return prepared
      return new Proxy(prepared, {
        get: (target, name) =>
          name === 'get'
            ? (...args: never[]) => {
                // Before the look-up when it is the first statement, after the partitions' when last:
                // either way, a commit by another connection lands around it.
                if (appended++ === 0) writer.commit([toRow(mutation('late', { late: true }), 4)])
                return target.get(...args)
              }
            : (Reflect.get(target, name) as unknown),
      }) as StatementSync
    })
    try {
      const caughtUp = new Map(marks.map((m) => [m.partition, m.high]))
      const page = [...(await log.readPage(caughtUp, 100))]
      // Read on from the page's end, as a consumer does next.
      for (const r of page) caughtUp.set(r.partition, r.offset + 1)
      page.push(...(await log.readPage(caughtUp, 100)))
      expect(appended).toBeGreaterThan(0)
      expect(page.map((r) => r.key)).toEqual(['late'])
    } finally {
      spy.mockRestore()
      other.close()
    }
  })

  it('refuses to reopen a log with another partition count', () => {
    expect(() => EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 8, create: true })).toThrow(ConfigError)
  })

  it('reports a missing log as not found when asked not to create it', () => {
    expect(() => EmbeddedLog.open({ stateDir: dir, namespace: 'other', partitions: 4, create: false })).toThrow(NotFoundError)
    expect(listEmbeddedLogs(dir)).toEqual(['ns'])
  })

  it('says an append blocks its caller when it commits in process, and not when a large batch goes to the writer thread', async () => {
    const inProcess = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 4, create: true, writerThread: false })
    const threaded = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 4, create: true, writerThread: true })
    vi.stubEnv('WAL_WRITER_THREAD', 'on')
    try {
      expect(inProcess.appendBlocks(1000)).toBe(true)
      expect(threaded.appendBlocks(1)).toBe(true) // a small batch commits in process
      expect(threaded.appendBlocks(1000)).toBe(false)
    } finally {
      vi.unstubAllEnvs()
      await inProcess.close()
      await threaded.close()
    }
  })
})

describe('the embedded consumer state', () => {
  const empty = { schedule: [], reschedule: [], unschedule: [], deadLetters: [], history: [] }

  it('fences commits by lease epoch: a consumer whose lease was taken over writes nothing, and learns it lost the partition', async () => {
    await log.append([mutation('k', 1)])
    const p = partitionForKey('k', 4)
    const a = await log.consumerStore('t')
    const b = await log.consumerStore('t')
    try {
      const claimedA = await a.claim('A', { index: 0, count: 1 }, 50)
      const epochA = claimedA.epochs!.get(p)!
      expect(await a.commit('A', { ...empty, epochs: new Map([[p, epochA]]), offsets: new Map([[p, 1]]) })).toEqual({ lost: [] })
      // A's lease lapses; B takes the partition over with a higher epoch and moves on.
      await new Promise((resolve) => setTimeout(resolve, 80))
      const claimedB = await b.claim('B', { index: 0, count: 1 }, 10_000)
      const epochB = claimedB.epochs!.get(p)!
      expect(epochB).toBeGreaterThan(epochA)
      await b.commit('B', { ...empty, epochs: new Map([[p, epochB]]), offsets: new Map([[p, 5]]) })
      // A wakes up and commits what it had: an older offset and a dead letter. Nothing of it is written.
      const deadLetter = { partition: p, mutation: mutation('k', 1), errorClass: 'fatal' as const, code: 'X', message: 'x', atMs: Date.now() }
      const late = await a.commit('A', { ...empty, epochs: new Map([[p, epochA]]), offsets: new Map([[p, 2]]), deadLetters: [deadLetter] })
      expect(late).toEqual({ lost: [p] })
      expect((await a.committed([p])).get(p)).toBe(5)
      expect((await a.counts()).deadLetters).toBe(0)
      // Renewing keeps the epoch; an offset without its epoch is refused.
      expect((await b.claim('B', { index: 0, count: 1 }, 10_000)).epochs!.get(p)).toBe(epochB)
      expect(await b.commit('B', { ...empty, epochs: new Map(), offsets: new Map([[p, 6]]) })).toEqual({ lost: [p] })
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('never moves a committed offset back', async () => {
    const store = await log.consumerStore('t')
    try {
      const { epochs } = await store.claim('A', { index: 0, count: 1 }, 10_000)
      await store.commit('A', { ...empty, epochs: new Map([[0, epochs!.get(0)!]]), offsets: new Map([[0, 7]]) })
      await store.commit('A', { ...empty, epochs: new Map([[0, epochs!.get(0)!]]), offsets: new Map([[0, 3]]) })
      expect((await store.committed([0])).get(0)).toBe(7)
    } finally {
      await store.close()
    }
  })
})
