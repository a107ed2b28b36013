/**
 * Key → partition, the same way as Kafka's default partitioner (murmur2 of the UTF-8 key, made positive,
 * modulo the partition count). Every backend uses it, so a key lands on the same partition number
 * whichever log holds the namespace, and other Kafka producers of a topic agree with `wal`.
 */

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of `data[0..length)`: a signed 32-bit hash. */
export function murmur2(data: Uint8Array, length = data.length): number {
  const m = 0x5bd1e995
  let h = 0x9747b28c ^ length
  const whole = length & ~3
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  switch (length & 3) {
    case 3:
      h ^= data[whole + 2]! << 16
    // falls through
    case 2:
      h ^= data[whole + 1]! << 8
    // falls through
    case 1:
      h ^= data[whole]!
      h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

const encoder = new TextEncoder()
// Keys are encoded into one reused buffer: this runs once per mutation on the produce hot path.
// Keys are at most 1024 characters, so 3 bytes each (UTF-16 → UTF-8) always fit.
const scratch = new Uint8Array(4096)

/** The key's UTF-8 bytes, in the scratch buffer when they fit: `bytes[0..written)`. */
function keyBytes(key: string): { bytes: Uint8Array; written: number } {
  const bytes = key.length * 3 <= scratch.length ? scratch : new Uint8Array(key.length * 3)
  const { written } = encoder.encodeInto(key, bytes)
  return { bytes, written }
}

/** The partition of a key among `partitions` partitions. */
export function partitionForKey(key: string, partitions: number): number {
  const { bytes, written } = keyBytes(key)
  return (murmur2(bytes, written) & 0x7fffffff) % partitions
}

let crcTable: Int32Array | undefined

/**
 * CRC-32 (IEEE 802.3, as zlib's) of `data[0..length)`, unsigned. Here rather than from node:zlib, which
 * would load all of zlib on every `wal` start for a few lines of arithmetic.
 */
export function crc32(data: Uint8Array, length = data.length): number {
  if (crcTable === undefined) {
    crcTable = new Int32Array(256)
    for (let n = 0; n < 256; n++) {
      let c = n
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
      crcTable[n] = c
    }
  }
  let crc = -1
  for (let i = 0; i < length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}

/**
 * How a Kafka namespace maps keys to partitions: `murmur2` as Kafka's Java client (and kafkajs) do, the
 * default; `consistent_random` as librdkafka's default partitioner (kcat, confluent-kafka clients in
 * C, Python, Go, .NET) does — CRC32 of the key, modulo the partition count — so that such producers of
 * the same topic agree with wal on where a key goes.
 */
export type PartitionerName = 'murmur2' | 'consistent_random'

export const PARTITIONERS: readonly PartitionerName[] = ['murmur2', 'consistent_random']

/** librdkafka's consistent_random for a non-empty key: CRC32 (IEEE) of its UTF-8 bytes, modulo the count. */
export function crc32PartitionForKey(key: string, partitions: number): number {
  const { bytes, written } = keyBytes(key)
  return crc32(bytes, written) % partitions
}

export function partitionerFor(name: PartitionerName): (key: string, partitions: number) => number {
  return name === 'consistent_random' ? crc32PartitionForKey : partitionForKey
}
