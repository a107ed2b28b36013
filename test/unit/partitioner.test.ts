import { randomBytes } from 'node:crypto'
import { crc32 as zlibCrc32 } from 'node:zlib'

import { describe, expect, it } from 'vitest'

import { crc32, crc32PartitionForKey, murmur2, partitionForKey } from '../../src/lib/log/partitioner.js'

const encode = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('partitioner', () => {
  it("hashes like Kafka's Java client (Utils.murmur2)", () => {
    // Vectors produced by org.apache.kafka.common.utils.Utils.murmur2.
    const vectors: Record<string, number> = {
      '0': 971027396,
      '1': -1993445489,
      '128': -326012175,
      '2187': -1508407203,
      '16384': -325739742,
    }
    for (const [key, hash] of Object.entries(vectors)) expect(murmur2(encode(key))).toBe(hash)
  })

  it("computes CRC-32 exactly as zlib does, for every length and byte value, and for keys longer than the scratch buffer", () => {
    for (let length = 0; length < 300; length++) {
      const bytes = randomBytes(length)
      expect(crc32(bytes)).toBe(zlibCrc32(bytes))
    }
    const long = 'ü'.repeat(3000)
    expect(crc32PartitionForKey(long, 1_000_003)).toBe(zlibCrc32(Buffer.from(long, 'utf8')) % 1_000_003)
  })

  it('hashes every tail length (0 to 3 trailing bytes) deterministically', () => {
    const hashes = ['', 'a', 'ab', 'abc', 'abcd', 'abcde'].map((k) => murmur2(encode(k)))
    expect(new Set(hashes).size).toBe(6)
    expect(murmur2(encode('abc'))).toBe(murmur2(encode('abc')))
  })

  it('puts a key in a partition within range, always the same one', () => {
    for (let i = 0; i < 1000; i++) {
      const p = partitionForKey(`user-${i}`, 7)
      expect(p).toBeGreaterThanOrEqual(0)
      expect(p).toBeLessThan(7)
      expect(partitionForKey(`user-${i}`, 7)).toBe(p)
    }
  })

  it('spreads keys over all partitions', () => {
    const counts = new Array(8).fill(0)
    for (let i = 0; i < 8000; i++) counts[partitionForKey(`k${i}`, 8)]++
    for (const c of counts) expect(c).toBeGreaterThan(800)
  })

  it('handles multi-byte UTF-8 keys by their bytes', () => {
    expect(partitionForKey('ünïcødé-🔑', 1)).toBe(0)
    expect(murmur2(encode('é'))).not.toBe(murmur2(encode('e')))
  })
})
