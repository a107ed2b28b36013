import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { decodeEnvelope, type Mutation } from '../../src/lib/envelope/envelope.js'
import { FileTarget } from '../../src/lib/targets/file/file-target.js'
import { KvTarget } from '../../src/lib/targets/kv/kv-target.js'
import { parseOperation } from '../../src/lib/targets/operations.js'
import { TargetError } from '../../src/lib/targets/target.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wal-targets-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function mutation(payload: unknown, createdAt: number, extra: Record<string, unknown> = {}): Mutation {
  return decodeEnvelope({ key: 'k', payload, createdAt, ...extra }, { namespace: 'ns', nowMs: createdAt })
}


describe('operations', () => {
  it.each([
    [{ op: 'put', table: 't', key: {}, item: {} }, /"key": expected at least one key column/],
    [{ op: 'upsert', table: 't' }, /"op": expected an operation with "op": "put", "delete" or "batch", found "upsert"/],
    [{ op: 'put', table: 'bad name', key: { id: 1 }, item: {} }, /"table": expected a table name/],
    [{ op: 'batch', parts: [] }, /"parts": expected at least one part/],
    // Shapes the fast path must hand over to the schema (which words the error).
    [{ op: 'put', table: 't', key: { id: 1 }, item: {}, extra: 1 }, /not a valid operation/],
    [{ op: 'delete', table: 't', key: { id: null } }, /"key\.id": expected a key value/],
    [{ op: 'delete', table: 't', key: { id: 1 }, scope: 'everything' }, /"scope": expected a scope/],
    [{ op: 'put', table: 't', key: { id: 1 }, item: [1, 2] }, /"item": expected an item object, not an array/],
    [{ op: 'put', table: 'users', item: { id: 42 } }, /not a valid operation: "key" is missing$/],
    [{ op: 'delete', table: 't', key: ['a'] }, /"key": expected an object of key columns, not an array/],
  ])('rejects %j as fatal, naming the field', (payload, message) => {
    expect(() => parseOperation(mutation(payload, 1))).toThrow(message)
    try {
      parseOperation(mutation(payload, 1))
    } catch (error) {
      expect((error as TargetError).errorClass).toBe('fatal')
    }
  })
})

describe('operations that parse', () => {
  it.each([
    { op: 'put', table: 't', key: { id: 1, k: 'a', b: true }, item: { name: 'Ada', nested: { x: [1] } } },
    { op: 'delete', table: 't', key: { id: 1 } },
    { op: 'delete', table: 't', key: { id: 1 }, scope: 'range', range: { column: 'ts', gte: 1, lt: 5 } },
    { op: 'batch', parts: [{ op: 'put', table: 't', key: { id: 1 }, item: {} }, { op: 'delete', table: 'u', key: { id: 2 } }] },
  ])('reads %j as it is', (payload) => {
    expect(parseOperation(mutation(payload, 1))).toEqual(payload)
  })
})

describe('numbers a double would not hold as written', () => {
  const withText = (json: string): Mutation => ({ ...mutation({}, 1), payload: { encoding: 'json', json } })
  const deep = (inner: string, levels: number): string => '{"a":'.repeat(levels) + inner + '}'.repeat(levels)

  it('keeps them exact in a kv item, at any depth, and stores every other number as JSON.parse reads it', () => {
    const text = `{"op":"put","table":"t","key":{"id":1},"item":{"a":[{"b":9007199254740993}],"c":1e400,"d":9007199254740992,"e":1e20,"f":-0.5,"g":${deep('-12345678901234567890', 70)}}}`
    const operation = parseOperation(withText(text), { exactItems: true })
    expect(JSON.stringify((operation as { item: unknown }).item)).toBe(
      `{"a":[{"b":9007199254740993}],"c":1e400,"d":9007199254740992,"e":100000000000000000000,"f":-0.5,"g":${deep('-12345678901234567890', 70)}}`,
    )
  })

  it.each([
    ['an integer past 2^53 in an item', '{"op":"put","table":"t","key":{"id":1},"item":{"n":9007199254740993}}', {}],
    ['a number beyond a double, 70 levels deep in an item', `{"op":"put","table":"t","key":{"id":1},"item":${deep('1e400', 70)}}`, {}],
    ['an integer past 2^53 in a key, even where items keep them', '{"op":"delete","table":"t","key":{"id":18446744073709551617}}', { exactItems: true }],
  ])('refuses %s as fatal NUMBER_NOT_EXACT', (_what, text, options) => {
    expect(() => parseOperation(withText(text), options)).toThrow(expect.objectContaining({ errorClass: 'fatal', code: 'NUMBER_NOT_EXACT' }))
  })

  it('reads exact numbers of any length without a second look', () => {
    const text = '{"op":"put","table":"t","key":{"id":1234567890123456},"item":{"n":9007199254740991,"x":"9007199254740993","y":1.0000000000000002,"z":2e-308}}'
    expect(parseOperation(withText(text))).toEqual(JSON.parse(text))
  })
})

describe('the kv target', () => {
  it('waits for a lock another process holds without blocking the event loop, then pauses as KV_LOCKED, and applies once it is free', async () => {
    const path = join(dir, 'kv.db')
    const kv = await KvTarget.open({ name: 'kv', path })
    const other = new DatabaseSync(path)
    const put = mutation({ op: 'put', table: 't', key: { id: 1 }, item: { v: 1 } }, 1000)
    try {
      other.exec('BEGIN IMMEDIATE')
      // Timers keep firing while the apply waits: the loop is free for heartbeats and other targets.
      let ticks = 0
      const timer = setInterval(() => ticks++, 20)
      const attempt = kv.apply(put, { attempt: 1, signal: new AbortController().signal })
      await expect(attempt).rejects.toMatchObject({ errorClass: 'infrastructure', code: 'KV_LOCKED' })
      clearInterval(timer)
      expect(ticks).toBeGreaterThan(5)
      other.exec('ROLLBACK')
      await kv.apply(put, { attempt: 2, signal: new AbortController().signal })
      await kv.flush()
      expect(kv.items('t').map((i) => i.item)).toEqual([{ v: 1 }])
    } finally {
      other.close()
      await kv.close()
    }
  })

  it('keeps the newest write by createdAt, whatever order writes arrive in, deletes included', async () => {
    const kv = await KvTarget.open({ name: 'kv', path: join(dir, 'kv.db') })
    const put = (v: number, at: number): Mutation => mutation({ op: 'put', table: 't', key: { id: 1 }, item: { v } }, at)
    await kv.apply(put(2, 2000))
    await kv.apply(put(1, 1000)) // a late retry of an older write
    await kv.apply(put(3, 3000))
    await kv.apply(mutation({ op: 'delete', table: 't', key: { id: 1 } }, 2500)) // older than v3
    await kv.flush()
    expect(kv.items('t').map((i) => i.item)).toEqual([{ v: 3 }])
    await kv.apply(mutation({ op: 'delete', table: 't', key: { id: 1 } }, 4000))
    await kv.apply(put(2, 2000)) // a replay of an old write after the delete
    await kv.flush()
    expect(kv.items('t')).toEqual([expect.objectContaining({ deleted: true, item: null, writtenAtMs: 4000 })])
    await kv.close()
  })

  it('applies a batch across tables, skipping parts a previous try already applied', async () => {
    const path = join(dir, 'kv.db')
    const kv = await KvTarget.open({ name: 'kv', path })
    const batch = mutation(
      {
        op: 'batch',
        parts: [
          { op: 'put', table: 'orders', key: { id: 'o1' }, item: { total: 5 } },
          { op: 'put', table: 'lines', key: { id: 'o1-1' }, item: { qty: 1 } },
        ],
      },
      1000,
    )
    // A previous try applied part 0 and recorded it, then failed before part 1.
    const other = new DatabaseSync(path)
    other.prepare('INSERT INTO batch_progress (mutation_id, part) VALUES (?, 0)').run(batch.id)
    other.close()
    await kv.apply(batch)
    await kv.flush()
    // Part 0 was skipped (not written again), part 1 applied; progress is cleared once complete.
    expect(kv.items().map((i) => i.table)).toEqual(['lines'])
    const check = new DatabaseSync(path)
    expect(check.prepare('SELECT count(*) AS n FROM batch_progress').get()).toEqual({ n: 0 })
    check.close()
    await kv.close()
  })

  it('rejects opaque payloads as fatal', async () => {
    const kv = await KvTarget.open({ name: 'kv', path: join(dir, 'kv.db') })
    await expect(kv.apply(mutation({ hello: 1 }, 1))).rejects.toMatchObject({ errorClass: 'fatal', code: 'NOT_AN_OPERATION' })
    await kv.close()
  })
})

describe('the file target', () => {
  it('appends envelopes that wal produce reads back, on flush', async () => {
    const path = join(dir, 'out', 'audit.ndjson')
    const file = new FileTarget({ name: 'audit', path })
    await file.apply(mutation({ a: 1 }, 1000, { headers: { h: 'v' } }))
    await file.apply(mutation('AAE=', 2000, { payloadEncoding: 'base64' }))
    await file.flush()
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines).toMatchObject([
      { key: 'k', payload: { a: 1 }, headers: { h: 'v' }, createdAt: '1970-01-01T00:00:01.000Z' },
      { payload: 'AAE=', payloadEncoding: 'base64' },
    ])
    await file.close()
  })

  it('keeps the order of single applies and batches, across batches of large payloads encoded in several chunks', async () => {
    const path = join(dir, 'out.ndjson')
    const file = new FileTarget({ name: 'out', path })
    const big = (i: number) => mutation({ i, blob: String(i % 10).repeat(700_000) }, 1000 + i)
    await file.apply(mutation({ i: -1 }, 999))
    // About 20 MB of lines in one batch: more than one chunk.
    await file.applyBatch(Array.from({ length: 30 }, (_, i) => big(i)))
    await file.apply(mutation({ i: 30 }, 2000))
    await file.applyBatch([mutation({ i: 31 }, 2001), mutation({ i: 32 }, 2002)])
    await file.flush()
    const lines = readFileSync(path, 'utf8').split('\n')
    expect(lines.pop()).toBe('')
    const payloads = lines.map((l) => (JSON.parse(l) as { payload: { i: number; blob?: string } }).payload)
    expect(payloads.map((p) => p.i)).toEqual(Array.from({ length: 34 }, (_, i) => i - 1))
    for (const p of payloads) if (p.blob !== undefined) expect(p.blob).toBe(String(p.i % 10).repeat(700_000))
    await file.close()
  })

  it('writes a batch of lines of any length and any text byte for byte as their UTF-8, short lines first and long ones after', async () => {
    const path = join(dir, 'mixed.ndjson')
    const file = new FileTarget({ name: 'out', path })
    const texts = ['a', 'é', '日本語', '\u{1F600}', 'x'.repeat(5_000), '\ud800 lone', 'ä'.repeat(400_000), '"quoted" \\ and \u0001', 'z'.repeat(3_000_000)]
    const batch = Array.from({ length: 60 }, (_, i) => mutation({ i, text: texts[i % texts.length] }, 1000 + i))
    await file.applyBatch(batch.slice(0, 3))
    await file.applyBatch(batch.slice(3))
    await file.flush()
    const { encodeEnvelope } = await import('../../src/lib/envelope/envelope.js')
    const expected = Buffer.from(batch.map((m) => encodeEnvelope(m) + '\n').join(''))
    expect(readFileSync(path).equals(expected)).toBe(true)
    await file.close()
  })

  it('writes every line whole across the blocks it encodes into and reuses, with characters of 1 to 4 bytes at the edges', async () => {
    const path = join(dir, 'wide.ndjson')
    const file = new FileTarget({ name: 'wide', path })
    const chars = ['a', 'é', '€', '😀', '\u2028']
    const expected: string[] = []
    let createdAt = 1000
    // Payload lengths that land line ends on every byte of a 256 KiB block over the rounds; a flush
    // every few batches hands the blocks back for reuse (whatever they held before must not show).
    for (let round = 0; round < 12; round++) {
      const batch: Mutation[] = []
      for (let i = 0; i < 300; i++) {
        const text = chars[(round + i) % chars.length]!.repeat(((round * 131 + i * 977) % 3000) + 1)
        batch.push(mutation({ round, i, text }, createdAt++))
        expected.push(`${round}:${i}:${text}`)
      }
      if (round % 2 === 0) await file.applyBatch(batch)
      else for (const m of batch) await file.apply(m)
      if (round % 3 === 2) await file.flush()
    }
    await file.flush()
    const lines = readFileSync(path, 'utf8').split('\n')
    expect(lines.pop()).toBe('')
    const got = lines.map((l) => {
      const { payload } = JSON.parse(l) as { payload: { round: number; i: number; text: string } }
      return `${payload.round}:${payload.i}:${payload.text}`
    })
    expect(got.length).toBe(expected.length)
    expect(got).toEqual(expected)
    await file.close()
  })

  it('writes to a device such as /dev/null, which cannot be fsync\'d', async () => {
    const file = new FileTarget({ name: 'discard', path: '/dev/null' })
    await file.apply(mutation({ a: 1 }, 1000))
    await expect(file.flush()).resolves.toBeUndefined()
    await file.close()
  })
})
