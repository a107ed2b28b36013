import { describe, expect, it } from 'vitest'

import { decodeEnvelopeLine } from '../../src/lib/envelope/envelope.js'
import { assignShards } from '../../src/lib/log/kafka/group-member.js'
import { ulidTimeMs } from '../../src/lib/log/kafka/kafka-log.js'
import { chunkedRecords, decodeRecord, encodeRecord, foreignRecordId, type IncomingRecord } from '../../src/lib/log/kafka/record-codec.js'

const defaults = { namespace: 'orders', nowMs: Date.parse('2026-11-22T00:00:00Z') }

function asIncoming(out: ReturnType<typeof encodeRecord>, offset: number): IncomingRecord {
  return {
    key: Buffer.from(out.key),
    value: typeof out.value === 'string' ? Buffer.from(out.value) : out.value,
    headers: Object.fromEntries(Object.entries(out.headers).map(([k, v]) => [k, Buffer.from(v)])),
    timestamp: out.timestamp,
    offset: String(offset),
  }
}

describe('the Kafka record codec', () => {
  it('stores a mutation as key, payload value and headers, and reads every field back', () => {
    const mutation = decodeEnvelopeLine(
      JSON.stringify({
        key: 'user-1',
        payload: { a: 1 },
        headers: { source: 'crm' },
        createdAt: '2026-01-02T03:04:05.678Z',
        notBefore: '2030-01-01T00:00:00.000Z',
        target: 'kv',
        idempotencyKey: 'op-1',
        attempts: 2,
        failures: [{ at: '2026-01-01T00:00:00.000Z', target: 'kv', errorClass: 'retryable', message: 'boom', attempt: 1 }],
      }),
      defaults,
    )
    const out = encodeRecord(mutation)
    expect(out.key).toBe('user-1')
    expect(out.value).toBe('{"a":1}')
    expect(out.headers.source).toBe('crm')
    const back = decodeRecord(asIncoming(out, 7), 'orders', 3, 'orders')
    expect(back).toEqual({ ...mutation, partition: 3, offset: 7, appendedAtMs: Date.parse('2026-01-02T03:04:05.678Z') })
  })

  it('writes a createdAt with microseconds as an ISO 8601 wal-created-at header, and reads the epoch-ms form earlier versions wrote', () => {
    const mutation = decodeEnvelopeLine(JSON.stringify({ key: 'k', payload: 1, createdAt: '2026-01-02T03:04:05.678123Z' }), defaults)
    const out = encodeRecord(mutation)
    expect(out.headers['wal-created-at']).toBe('2026-01-02T03:04:05.678123Z')
    expect(out.timestamp).toBe(String(Date.parse('2026-01-02T03:04:05.678Z')))
    expect(decodeRecord(asIncoming(out, 0), 'orders', 0, 'orders').createdAtMs).toBe(mutation.createdAtMs)
    const legacy = { ...out, headers: { ...out.headers, 'wal-created-at': String(mutation.createdAtMs) } }
    expect(decodeRecord(asIncoming(legacy, 0), 'orders', 0, 'orders').createdAtMs).toBe(mutation.createdAtMs)
    // Whole milliseconds: the record timestamp says it all, no header.
    expect(encodeRecord(decodeEnvelopeLine(JSON.stringify({ key: 'k', payload: 1, createdAt: '2026-01-02T03:04:05.678Z' }), defaults)).headers['wal-created-at']).toBeUndefined()
  })

  it('keeps binary payloads as bytes', () => {
    const mutation = decodeEnvelopeLine(JSON.stringify({ key: 'b', payload: Buffer.from([0, 255, 1]).toString('base64'), payloadEncoding: 'base64' }), defaults)
    const back = decodeRecord(asIncoming(encodeRecord(mutation), 0), 'orders', 0, 'orders')
    expect(back.payload).toEqual({ encoding: 'base64', bytes: Buffer.from([0, 255, 1]) })
  })

  it('wraps a record of another producer: JSON or bytes, its headers, and an id that is the same on every read', () => {
    const record: IncomingRecord = { key: Buffer.from('k'), value: Buffer.from('{"x":1}'), headers: { origin: Buffer.from('legacy') }, timestamp: '1700000000000', offset: '42' }
    const first = decodeRecord(record, 'orders', 1, 'orders')
    expect(first).toMatchObject({ key: 'k', payload: { encoding: 'json', json: '{"x":1}' }, headers: { origin: 'legacy' }, createdAtMs: 1700000000000, attempts: 0 })
    expect(decodeRecord(record, 'orders', 1, 'orders').id).toBe(first.id)
    expect(first.id).toBe(foreignRecordId('orders', 1, '42', 1700000000000))
    expect(ulidTimeMs(first.id)).toBe(1700000000000)
    const raw = decodeRecord({ key: null, value: Buffer.from([0xff, 0]), timestamp: '1', offset: '5' }, 'orders', 2, 'orders')
    expect(raw.payload.encoding).toBe('base64')
    expect(raw.key).toBe('orders/2/5')
  })

  it('leaves the DLQ failure headers out of the mutation', () => {
    const mutation = decodeEnvelopeLine(JSON.stringify({ key: 'k', payload: 1 }), defaults)
    const out = encodeRecord(mutation, { 'wal-dlq-target': 'api', 'wal-dlq-code': 'HTTP_400' })
    expect(decodeRecord(asIncoming(out, 0), 'orders.dlq', 0, 'orders').headers).toEqual({})
  })
})

describe('a record against the size a topic takes', () => {
  const record = (value: string) => encodeRecord(decodeEnvelopeLine(JSON.stringify({ key: 'k', payload: value, headers: { h: 'v' } }), defaults))
  const LIMIT = 64 * 1024

  it('stays one record when it fits, even when its characters take more than one byte each', () => {
    const small = record('small')
    expect(chunkedRecords(small, LIMIT)).toEqual([small])
    // 50,000 bytes of two-byte characters: more than the limit counted as three bytes each, less in bytes.
    const accented = record('é'.repeat(25_000))
    expect(chunkedRecords(accented, LIMIT)).toEqual([accented])
  })

  it('is cut into chunks that hold its bytes in order once its UTF-8 bytes do not fit', () => {
    const large = record('€'.repeat(30_000))
    const chunks = chunkedRecords(large, LIMIT)
    expect(chunks.length).toBeGreaterThan(1)
    expect(Buffer.concat(chunks.map((c) => c.value as Buffer))).toEqual(Buffer.from(large.value as string))
    for (const chunk of chunks) expect(chunk.key).toBe('k')
  })
})

describe('the shard assignor', () => {
  const partitions = [0, 1, 2, 3, 4, 5]

  it('gives static shards p % N == I and shares the rest among auto members', () => {
    const assignment = assignShards(partitions, [
      { memberId: 'b', shard: '0/3' },
      { memberId: 'a', shard: 'auto' },
      { memberId: 'c', shard: 'auto' },
    ])
    expect(assignment.get('b')).toEqual([0, 3])
    expect(assignment.get('a')).toEqual([1, 4])
    expect(assignment.get('c')).toEqual([2, 5])
  })

  it('gives a partition to one member only, even when two ask for the same shard', () => {
    const assignment = assignShards(partitions, [
      { memberId: 'x', shard: '1/2' },
      { memberId: 'y', shard: '1/2' },
    ])
    expect(assignment.get('x')).toEqual([1, 3, 5])
    expect(assignment.get('y')).toEqual([])
    const all = [...assignment.values()].flat()
    expect(new Set(all).size).toBe(all.length)
  })
})
