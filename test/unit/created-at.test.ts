import { mkdtempSync, rmSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { CreatedAtClock, createdAtMicros, formatCreatedAt, parseCreatedAt } from '../../src/lib/envelope/created-at.js'
import { decodeEnvelope, decodeEnvelopeLine, encodeEnvelope, type LogRecord } from '../../src/lib/envelope/envelope.js'
import { EmbeddedLog } from '../../src/lib/log/embedded/embedded-log.js'
import { decodeRecord, encodeRecord } from '../../src/lib/log/kafka/record-codec.js'

const T = Date.parse('2026-12-01T09:00:00.123Z')

describe('createdAt with microseconds', () => {
  it('strictly increases within a process even when the clock stands still or goes back', () => {
    let now = T
    const clock = new CreatedAtClock(() => now)
    const first = clock.next()
    const second = clock.next()
    now = T - 5
    const third = clock.next()
    now = T + 10
    const fourth = clock.next()
    expect([first, second, third, fourth].map(createdAtMicros)).toEqual([T * 1000, T * 1000 + 1, T * 1000 + 2, (T + 10) * 1000])
  })

  it('gives a whole stdin chunk produced in one millisecond distinct, ordered write times', () => {
    const clock = new CreatedAtClock(() => T)
    const defaults = { namespace: 'ns', nowMs: T, createdAtMs: () => clock.next() }
    const times = Array.from({ length: 1000 }, (_, i) => decodeEnvelope({ key: 'k', payload: i }, defaults).createdAtMs)
    const micros = times.map(createdAtMicros)
    expect(new Set(micros).size).toBe(1000)
    expect([...micros].sort((a, b) => a - b)).toEqual(micros)
  })

  it('writes six fraction digits only when there are microseconds, and parses them back exactly', () => {
    expect(formatCreatedAt(T)).toBe('2026-12-01T09:00:00.123Z')
    expect(formatCreatedAt(T + 0.456)).toBe('2026-12-01T09:00:00.123456Z')
    expect(formatCreatedAt(T + 0.007)).toBe('2026-12-01T09:00:00.123007Z')
    expect(createdAtMicros(parseCreatedAt('2026-12-01T09:00:00.123456Z'))).toBe(T * 1000 + 456)
    expect(createdAtMicros(parseCreatedAt('2026-12-01T09:00:00.123456789Z'))).toBe(T * 1000 + 456)
    expect(parseCreatedAt('2026-12-01T09:00:00.123Z')).toBe(T)
    expect(createdAtMicros(parseCreatedAt('1969-12-31T23:59:59.999123Z'))).toBe(-877)
    expect(parseCreatedAt('yesterday')).toBeNaN()
  })

  it('survives an envelope round trip (tail --json | produce) to the microsecond', () => {
    const m = decodeEnvelope({ key: 'k', payload: 1 }, { namespace: 'ns', nowMs: T, createdAtMs: () => T + 0.001 })
    const line = encodeEnvelope(m)
    expect(JSON.parse(line).createdAt).toBe('2026-12-01T09:00:00.123001Z')
    const again = decodeEnvelopeLine(line, { namespace: 'ns', nowMs: 0 })
    expect(createdAtMicros(again.createdAtMs)).toBe(T * 1000 + 1)
  })

  it('survives the Kafka record codec in its wal-created-at header, the record timestamp in whole ms', () => {
    const m = decodeEnvelope({ key: 'k', payload: 1 }, { namespace: 'ns', nowMs: T, createdAtMs: () => T + 0.999 })
    const out = encodeRecord(m)
    expect(out.timestamp).toBe(String(T))
    expect(out.headers['wal-created-at']).toBeDefined()
    const back = decodeRecord(
      { key: Buffer.from(out.key), value: Buffer.from(out.value), headers: out.headers, timestamp: out.timestamp, offset: '0' },
      'topic',
      0,
      'ns',
    )
    expect(back.createdAtMs).toBe(m.createdAtMs)
    expect(createdAtMicros(back.createdAtMs)).toBe(T * 1000 + 999)
    // Whole milliseconds need no header.
    expect(encodeRecord({ ...m, createdAtMs: T }).headers['wal-created-at']).toBeUndefined()
  })
})

describe('the embedded log and microseconds', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wal-created-at-'))
  })
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  async function readAll(log: EmbeddedLog): Promise<LogRecord[]> {
    const marks = await log.marks()
    const out: LogRecord[] = []
    for await (const r of log.read({ from: new Map(marks.map((m) => [m.partition, m.low])), until: new Map(marks.map((m) => [m.partition, m.high])) })) out.push(r)
    return out
  }

  it('stores createdAt to the microsecond and reads it back', async () => {
    const log = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 1, create: true })
    try {
      const clock = new CreatedAtClock(() => T)
      await log.append([0, 1, 2].map((i) => decodeEnvelope({ key: 'k', payload: i }, { namespace: 'ns', nowMs: T, createdAtMs: () => clock.next() })))
      await log.append([decodeEnvelope({ key: 'k', payload: 3, createdAt: T + 1 }, { namespace: 'ns', nowMs: T })])
      expect((await readAll(log)).map((r) => createdAtMicros(r.createdAtMs))).toEqual([T * 1000, T * 1000 + 1, T * 1000 + 2, (T + 1) * 1000])
    } finally {
      await log.close()
    }
  })

  it('adds the microsecond column to a log written by an older wal, keeping its records', async () => {
    const first = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 1, create: true })
    await first.append([decodeEnvelope({ key: 'k', payload: 'old', createdAt: T }, { namespace: 'ns', nowMs: T })])
    await first.close()
    // Make it look like a log from before the column existed.
    const db = new DatabaseSync(join(dir, 'embedded', 'ns.db'))
    db.exec('ALTER TABLE records DROP COLUMN created_at_us')
    db.close()

    const log = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 1, create: true })
    try {
      await log.append([decodeEnvelope({ key: 'k', payload: 'new' }, { namespace: 'ns', nowMs: T, createdAtMs: () => T + 0.5 })])
      const records = await readAll(log)
      expect(records.map((r) => [r.payload, createdAtMicros(r.createdAtMs)])).toEqual([
        [{ encoding: 'json', json: '"old"' }, T * 1000],
        [{ encoding: 'json', json: '"new"' }, T * 1000 + 500],
      ])
    } finally {
      await log.close()
    }
  })
})
