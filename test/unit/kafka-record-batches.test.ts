import { describe, expect, it } from 'vitest'

import { batchBudget, chunkByPartitionBytes, DEFAULT_MAX_MESSAGE_BYTES, recordBytes, sendChunks } from '../../src/lib/kafka/record-batches.js'
import { crc32PartitionForKey, partitionerFor, partitionForKey } from '../../src/lib/log/partitioner.js'

describe('Kafka sends in requests the brokers take', () => {
  it('splits records so that no partition gets more than the budget in one request, keeping their order', () => {
    const items = Array.from({ length: 50 }, (_, n) => ({ n, partition: n % 2, bytes: 100 }))
    const chunks = chunkByPartitionBytes(items, { bytes: (i) => i.bytes, partitionOf: (i) => String(i.partition), maxBytes: 1000 })
    expect(chunks.flat().map((i) => i.n)).toEqual(items.map((i) => i.n))
    for (const chunk of chunks) {
      for (const p of [0, 1]) expect(chunk.filter((i) => i.partition === p).length).toBeLessThanOrEqual(10)
    }
    // A record larger than the budget goes alone rather than never.
    expect(chunkByPartitionBytes([{ b: 10 }, { b: 5000 }, { b: 10 }], { bytes: (i) => i.b, partitionOf: () => '0', maxBytes: 1000 }).map((c) => c.length)).toEqual([1, 1, 1])
    expect(batchBudget(DEFAULT_MAX_MESSAGE_BYTES)).toBe(512 * 1024)
    expect(batchBudget(4096)).toBe(4096 - 61)
  })

  it("counts a record's UTF-8 bytes: ASCII and not, short and long, text and raw bytes", () => {
    const utf8 = (s: string | Buffer) => Buffer.byteLength(s)
    const cases: Array<{ key: string | Buffer | null; value: string | Buffer | null; headers?: Record<string, string> }> = [
      { key: 'user-1', value: '{"a":1}', headers: { 'wal-id': '01JABCDEFGHJKMNPQRSTVWXYZ0' } },
      { key: 'ключ', value: 'é'.repeat(64), headers: { 'trace-ключ': 'значение', ascii: 'x'.repeat(65), mixed: `${'x'.repeat(63)}é` } },
      { key: Buffer.from([0xff, 0]), value: Buffer.alloc(300), headers: {} },
      { key: null, value: null },
    ]
    for (const record of cases) {
      const headers = Object.entries(record.headers ?? {}).reduce((n, [name, value]) => n + utf8(name) + utf8(value) + 4, 0)
      expect(recordBytes(record)).toBe(70 + (record.key ? utf8(record.key) : 0) + (record.value === null ? 0 : utf8(record.value)) + headers)
    }
  })

  it('halves a request the brokers refuse for a record until that record alone fails; an outage fails the rest', async () => {
    const sent: number[][] = []
    const tooLarge = Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' })
    const outcomes = await sendChunks(
      [[1, 2, 3, 4, 5, 6, 7, 8]],
      async (chunk) => {
        if (chunk.includes(6)) throw tooLarge
        sent.push(chunk)
        return chunk.map((n) => n * 10)
      },
      (error) => error === tooLarge,
    )
    expect(sent.flat()).toEqual([1, 2, 3, 4, 5, 7, 8])
    expect(outcomes.map((o) => ('ok' in o ? o.ok : 'refused'))).toEqual([10, 20, 30, 40, 50, 'refused', 70, 80])

    const down = new Error('down')
    let calls = 0
    const stopped = await sendChunks([[1], [2], [3]], async (chunk) => {
      if (++calls === 2) throw down
      return chunk
    }, () => false)
    expect(stopped).toEqual([{ ok: 1 }, { error: down }, { error: down }])
    expect(calls).toBe(2)
  })
})

describe('the partitioners', () => {
  it("consistent_random is librdkafka's: CRC32 of the key's bytes modulo the partitions", () => {
    // crc32("user-1") = 0x7E264614 (zlib, Python's zlib.crc32 agrees), and the same for a key with non-ASCII bytes.
    expect(crc32PartitionForKey('user-1', 7)).toBe(0x7e264614 % 7)
    expect(crc32PartitionForKey('ü', 1000)).toBe(0x63d969d5 % 1000)
    expect(partitionerFor('murmur2')).toBe(partitionForKey)
    expect(partitionerFor('consistent_random')('user-1', 7)).toBe(crc32PartitionForKey('user-1', 7))
  })
})
