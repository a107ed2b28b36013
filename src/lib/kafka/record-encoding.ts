/**
 * The bytes of a produce request's record batches, as kafkajs 2.2.4 writes them, with less work: wal puts
 * these in place of kafkajs's record and record-batch encoders when it loads kafkajs (see client.ts).
 *
 * kafkajs encodes each record into an encoder of its own (512 bytes, zero-filled, whatever the record's
 * size; each header in another one; a Buffer for every varint), then copies the records into the batch's
 * encoder, the batch into another one to put its CRC in front, and that into a third one behind its
 * offset; its CRC-32C reads a byte at a time. Here a record is measured when kafkajs asks for it and
 * written once, straight into its batch's one buffer of the exact size; the CRC-32C reads 8 bytes at a
 * time. The bytes are the same (the Kafka record batch v2 layout: test/unit/kafka-client.test.ts
 * compares them with kafkajs's own encoders).
 */
import { createRequire } from 'node:module'

interface KafkajsEncoder {
  buf: Buffer
  offset: number
  ensureAvailable(length: number): void
  writeInt8(n: number): KafkajsEncoder
  writeInt16(n: number): KafkajsEncoder
  writeInt32(n: number): KafkajsEncoder
  writeUInt32(n: number): KafkajsEncoder
  writeInt64(n: unknown): KafkajsEncoder
  writeString(s: string | null | undefined): KafkajsEncoder
  writeVarLong(n: unknown): KafkajsEncoder
  writeBuffer(b: Buffer): KafkajsEncoder
  writeEncoderArray(records: unknown[]): KafkajsEncoder
  readonly buffer: Buffer
  size(): number
}
interface EncoderClass {
  new (initialSize?: number): KafkajsEncoder
  sizeOfVarLong(n: unknown): number
}

const require = createRequire(import.meta.url)
let Encoder: EncoderClass | undefined
const encoderClass = (): EncoderClass => (Encoder ??= require('kafkajs/src/protocol/encoder.js') as EncoderClass)

/** An encoder of kafkajs's class over `buf` (so kafkajs's own methods write into it, and it passes its checks). */
function encoderOver(buf: Buffer): KafkajsEncoder {
  const e = new (encoderClass())(1)
  e.buf = buf
  e.offset = 0
  return e
}

// CRC-32C (Castagnoli), reflected, 8 bytes a step ("slicing by 8"): T[k * 256 + b] is the CRC of byte b
// followed by k zero bytes.
const CRC_TABLE = (() => {
  const t = new Int32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[n] = c
  }
  for (let n = 0; n < 256; n++) for (let k = 1; k < 8; k++) t[k * 256 + n] = (t[(k - 1) * 256 + n]! >>> 8) ^ t[t[(k - 1) * 256 + n]! & 0xff]!
  return t
})()

/** The CRC-32C of buf[start, end), as an unsigned 32-bit number. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const t = CRC_TABLE
  let crc = -1
  let i = start
  const end8 = start + ((end - start) & ~7)
  while (i < end8) {
    const a = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ crc
    crc =
      t[0x700 + (a & 0xff)]! ^
      t[0x600 + ((a >>> 8) & 0xff)]! ^
      t[0x500 + ((a >>> 16) & 0xff)]! ^
      t[0x400 + (a >>> 24)]! ^
      t[0x300 + buf[i + 4]!]! ^
      t[0x200 + buf[i + 5]!]! ^
      t[0x100 + buf[i + 6]!]! ^
      t[buf[i + 7]!]!
    i += 8
  }
  for (; i < end; i++) crc = t[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8)
  return ~crc >>> 0
}

/** Bytes of a varint as kafkajs writes it (writeUVarInt): 7 bits a byte, of a 32-bit value. */
function uvarintBytes(value: number): number {
  let bytes = 1
  while ((value & 0xffffff80) !== 0) {
    bytes++
    value >>>= 7
  }
  return bytes
}

function putUVarInt(buf: Buffer, at: number, value: number): number {
  while ((value & 0xffffff80) !== 0) {
    buf[at++] = (value & 0x7f) | 0x80
    value >>>= 7
  }
  buf[at++] = value & 0x7f
  return at
}

const zigZag = (value: number): number => (value << 1) ^ (value >> 31)

/** A delta kafkajs writes as a zigzag varlong that has the 32-bit zigzag's bytes (|value| < 2^30). */
const smallDelta = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= -0x40000000 && value < 0x40000000

/** Bytes of a record field as kafkajs's writeVarIntBytes writes it: -1 for null, else UTF-8 (or raw) bytes. */
const fieldBytes = (value: unknown): number => (value === null || value === undefined ? -1 : Buffer.isBuffer(value) ? value.length : typeof value === 'string' ? Buffer.byteLength(value) : Buffer.byteLength(String(value)))
const sizeOfField = (length: number): number => (length < 0 ? 1 : uvarintBytes(zigZag(length)) + length)

/** Writes a field of `length` bytes (fieldBytes) with its length in front. */
function putField(buf: Buffer, at: number, value: unknown, length: number): number {
  if (length < 0) return putUVarInt(buf, at, 1) // zigZag(-1)
  at = putUVarInt(buf, at, zigZag(length))
  if (Buffer.isBuffer(value)) {
    value.copy(buf, at)
  } else {
    buf.write(typeof value === 'string' ? value : String(value), at, length, 'utf8')
  }
  return at + length
}

type RecordHeaders = Record<string, unknown>

/**
 * A record of a batch: measured when made, written when its batch is (writeTo). Also an encoder as kafkajs
 * knows them (`buf`, `buffer`, `size()`), written alone on first use, for any code of kafkajs that takes
 * a record that way.
 */
export class BatchRecord {
  /** The record's bytes, its length varint included. */
  readonly bytes: number
  private readonly bodyBytes: number
  private readonly keyBytes: number
  private readonly valueBytes: number
  /** Header names and values, one pair per value (a header given a list of values repeats), when there are any. */
  private readonly headerPairs: unknown[] | undefined
  private own: Buffer | undefined

  constructor(
    private readonly key: unknown,
    private readonly value: unknown,
    headers: RecordHeaders,
    private readonly offsetDelta: number,
    private readonly timestampDelta: unknown,
  ) {
    let pairs: unknown[] | undefined
    for (const name of Object.keys(headers)) {
      const v = headers[name]
      pairs ??= []
      if (Array.isArray(v)) for (const one of v) pairs.push(name, one)
      else pairs.push(name, v)
    }
    this.headerPairs = pairs
    this.keyBytes = fieldBytes(key)
    this.valueBytes = fieldBytes(value)
    let headerBytes = 0
    let count = 0
    if (pairs !== undefined) {
      count = pairs.length >> 1
      for (let i = 0; i < pairs.length; i += 2) headerBytes += sizeOfField(Buffer.byteLength(pairs[i] as string)) + sizeOfField(fieldBytes(pairs[i + 1]))
    }
    headerBytes += uvarintBytes(zigZag(count))
    const timestampBytes = smallDelta(timestampDelta) ? uvarintBytes(zigZag(timestampDelta)) : encoderClass().sizeOfVarLong(timestampDelta)
    this.bodyBytes = 1 + timestampBytes + uvarintBytes(zigZag(offsetDelta)) + sizeOfField(this.keyBytes) + sizeOfField(this.valueBytes) + headerBytes
    this.bytes = uvarintBytes(zigZag(this.bodyBytes)) + this.bodyBytes
  }

  /** Writes the record at buf[at…] (bytes of room); returns where it ends. */
  writeTo(buf: Buffer, at: number): number {
    at = putUVarInt(buf, at, zigZag(this.bodyBytes))
    buf[at++] = 0 // attributes: none
    const delta = this.timestampDelta
    if (smallDelta(delta)) {
      at = putUVarInt(buf, at, zigZag(delta))
    } else {
      const e = encoderOver(buf)
      e.offset = at
      e.writeVarLong(delta)
      at = e.offset
    }
    at = putUVarInt(buf, at, zigZag(this.offsetDelta))
    at = putField(buf, at, this.key, this.keyBytes)
    at = putField(buf, at, this.value, this.valueBytes)
    const pairs = this.headerPairs
    if (pairs === undefined) return putUVarInt(buf, at, 0)
    at = putUVarInt(buf, at, zigZag(pairs.length >> 1))
    for (let i = 0; i < pairs.length; i += 2) {
      const name = pairs[i] as string
      at = putField(buf, at, name, Buffer.byteLength(name))
      const value = pairs[i + 1]
      at = putField(buf, at, value, fieldBytes(value))
    }
    return at
  }

  get buf(): Buffer {
    if (this.own === undefined) {
      this.own = Buffer.allocUnsafe(this.bytes)
      this.writeTo(this.own, 0)
    }
    return this.own
  }

  get buffer(): Buffer {
    return this.buf
  }

  get offset(): number {
    return this.bytes
  }

  size(): number {
    return this.bytes
  }
}

/** In place of kafkajs's recordBatch/record/v0 (its default export): a record, measured, not yet written. */
export function encodeRecord({ offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }: { offsetDelta?: number; timestampDelta?: unknown; key: unknown; value: unknown; headers?: RecordHeaders }): BatchRecord {
  return new BatchRecord(key, value, headers, offsetDelta, timestampDelta)
}

const MAGIC_BYTE = 2
const TRANSACTIONAL_MASK = 16
/** Bytes of a batch before its records: first offset, length, leader epoch, magic, CRC, then the CRC'd header. */
const BATCH_HEAD_BYTES = 8 + 4 + 4 + 1 + 4
const BODY_HEAD_BYTES = 2 + 4 + 8 + 8 + 8 + 2 + 4

interface RecordBatchArgs {
  compression?: number
  firstOffset?: unknown
  firstTimestamp?: unknown
  maxTimestamp?: unknown
  partitionLeaderEpoch?: number
  lastOffsetDelta?: number
  transactional?: boolean
  producerId?: unknown
  producerEpoch?: number
  firstSequence?: number
  records?: unknown[]
}

/**
 * In place of kafkajs's recordBatch/v0 RecordBatch: the same fields and the same bytes, in one buffer of
 * the batch's size (uncompressed), the records written straight into it.
 */
export async function encodeRecordBatch({
  compression = 0,
  firstOffset = 0,
  firstTimestamp = Date.now(),
  maxTimestamp = Date.now(),
  partitionLeaderEpoch = 0,
  lastOffsetDelta = 0,
  transactional = false,
  producerId = -1,
  producerEpoch = 0,
  firstSequence = 0,
  records = [],
}: RecordBatchArgs): Promise<KafkajsEncoder> {
  const codec = compression & 0x07
  const attributes = codec | (transactional ? TRANSACTIONAL_MASK : 0)
  const ours = records.every((r) => r instanceof BatchRecord)
  let recordBytes = 0
  if (ours) for (const r of records as BatchRecord[]) recordBytes += r.bytes
  let compressed: Buffer | undefined
  if (codec !== 0 || !ours) {
    // Compressed (or records that are not ours): the records' bytes first, as kafkajs concatenates them.
    const all = new (encoderClass())(recordBytes || undefined)
    all.writeEncoderArray(records)
    if (codec === 0) {
      compressed = all.buffer
    } else {
      const { lookupCodec } = require('kafkajs/src/protocol/message/compression/index.js') as { lookupCodec(type: number): { compress(encoder: KafkajsEncoder): Promise<Buffer> } }
      compressed = await lookupCodec(codec).compress(all)
    }
  }
  const total = BATCH_HEAD_BYTES + BODY_HEAD_BYTES + 4 + (compressed === undefined ? recordBytes : compressed.length)
  const e = encoderOver(Buffer.allocUnsafe(total))
  e.writeInt64(firstOffset)
  e.writeInt32(total - 12) // the bytes after the offset and this length
  e.writeInt32(partitionLeaderEpoch)
  e.writeInt8(MAGIC_BYTE)
  const crcAt = e.offset
  e.offset += 4
  const bodyAt = e.offset
  e.writeInt16(attributes).writeInt32(lastOffsetDelta).writeInt64(firstTimestamp).writeInt64(maxTimestamp).writeInt64(producerId).writeInt16(producerEpoch).writeInt32(firstSequence)
  e.writeInt32(records.length)
  if (compressed !== undefined) {
    compressed.copy(e.buf, e.offset)
    e.offset += compressed.length
  } else {
    let at = e.offset
    for (const r of records as BatchRecord[]) at = r.writeTo(e.buf, at)
    e.offset = at
  }
  e.buf.writeUInt32BE(crc32c(e.buf, bodyAt, e.offset), crcAt)
  return e
}

export const recordBatchModule = { RecordBatch: encodeRecordBatch, MAGIC_BYTE }

/** Bytes of a string as kafkajs's writeString writes it: an int16 length (-1 for null) and UTF-8. */
const sizeOfString = (s: string | null | undefined): number => 2 + (s == null ? 0 : Buffer.byteLength(s))

interface OutgoingMessage {
  key?: unknown
  value?: unknown
  headers?: RecordHeaders
  timestamp?: unknown
}
interface ProduceTopicData {
  topic: string
  partitions: Array<{ partition: number; firstSequence?: number; messages: OutgoingMessage[] }>
}

/**
 * In place of kafkajs's produce request v3 (which v4 to v7 reuse): the same request, its record batches
 * each in one buffer (encodeRecordBatch) and copied once, into the request's buffer of its size, rather
 * than into an encoder per partition, per topic and for the request, each grown from 512 zeroed bytes.
 * The batch's first and last timestamps are the messages' least and greatest as strings, as kafkajs's
 * sort() of them gives.
 */
export function produceRequest({
  acks,
  timeout,
  transactionalId = null,
  producerId = -1,
  producerEpoch = 0,
  compression = 0,
  topicData,
}: {
  acks: number
  timeout: number
  transactionalId?: string | null
  producerId?: unknown
  producerEpoch?: number
  compression?: number
  topicData: ProduceTopicData[]
}) {
  return {
    apiKey: 0,
    apiVersion: 3,
    apiName: 'Produce',
    expectResponse: () => acks !== 0,
    encode: async (): Promise<KafkajsEncoder> => {
      const dateNow = Date.now()
      let total = sizeOfString(transactionalId) + 2 + 4 + 4
      const batches: KafkajsEncoder[][] = []
      for (const { topic, partitions } of topicData) {
        total += sizeOfString(topic) + 4
        const own: KafkajsEncoder[] = []
        for (const { messages, firstSequence } of partitions) {
          let first: unknown
          let last: unknown
          for (const m of messages) {
            const t = m.timestamp
            if (t === null || t === undefined) continue
            if (first === undefined || String(t) < String(first)) first = t
            if (last === undefined || String(t) >= String(last)) last = t
          }
          const firstTimestamp = first ?? dateNow
          const maxTimestamp = last ?? dateNow
          const records = new Array<BatchRecord>(messages.length)
          for (let i = 0; i < messages.length; i++) {
            const m = messages[i]!
            records[i] = new BatchRecord(m.key, m.value, m.headers ?? {}, i, ((m.timestamp || dateNow) as number) - (firstTimestamp as number))
          }
          const batch = await encodeRecordBatch({ compression, records, firstTimestamp, maxTimestamp, producerId, producerEpoch, firstSequence, transactional: !!transactionalId, lastOffsetDelta: records.length - 1 })
          own.push(batch)
          total += 4 + 4 + batch.offset
        }
        batches.push(own)
      }
      const e = encoderOver(Buffer.allocUnsafe(total))
      e.writeString(transactionalId).writeInt16(acks).writeInt32(timeout).writeInt32(topicData.length)
      topicData.forEach(({ topic, partitions }, t) => {
        e.writeString(topic).writeInt32(partitions.length)
        partitions.forEach(({ partition }, p) => {
          const batch = batches[t]![p]!
          e.writeInt32(partition).writeInt32(batch.offset)
          batch.buf.copy(e.buf, e.offset, 0, batch.offset)
          e.offset += batch.offset
        })
      })
      return e
    },
  }
}

/**
 * In place of kafkajs's protocol/request.js, which frames every request: the size, the request header and
 * the payload, copied once into a buffer of their size (kafkajs copies the payload twice, each time into
 * an encoder grown from 512 zeroed bytes).
 */
export async function frameRequest({ correlationId, clientId, request: { apiKey, apiVersion, encode } }: { correlationId: number; clientId: string | null; request: { apiKey: number; apiVersion: number; encode(): Promise<KafkajsEncoder> | KafkajsEncoder } }): Promise<KafkajsEncoder> {
  const payload = await encode()
  const size = 2 + 2 + 4 + sizeOfString(clientId) + payload.offset
  const e = encoderOver(Buffer.allocUnsafe(4 + size))
  e.writeInt32(size).writeInt16(apiKey).writeInt16(apiVersion).writeInt32(correlationId).writeString(clientId)
  payload.buf.copy(e.buf, e.offset, 0, payload.offset)
  e.offset += payload.offset
  return e
}
