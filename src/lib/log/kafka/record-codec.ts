/**
 * How a mutation is stored as a Kafka record, so other Kafka clients can read it as an ordinary record:
 * the key is the mutation's key, the value is the payload (JSON text or the raw bytes), the record
 * timestamp is createdAt, and the user's headers are kept as they are. wal's own fields travel in
 * headers named `wal-*`, written only when they differ from their default.
 *
 * A record with a `wal-id` header that cannot be decoded is quarantined (see decodeRecord).
 * Records without a `wal-id` header were written by another producer: they are wrapped in an envelope
 * on read (a stable id derived from their position, the key as it is, JSON when the value is JSON and
 * base64 bytes otherwise) rather than rejected.
 */
import { isUtf8 } from 'node:buffer'

import { formatCreatedAt, parseTimeHeader } from '../../envelope/created-at.js'
import { foreignRecordId, ULID_PATTERN } from '../../envelope/id.js'
import { checkedJson, poisonRecord } from '../../envelope/quarantine.js'
import { timeInRange } from '../../time.js'
import { CHUNK_ENCODING_HEADER, CHUNK_HEADER, chunkValue } from '../chunks.js'
import { batchBudget, recordBytes } from '../../kafka/record-batches.js'
import { decodeFailures, failuresToJson, MAX_KEY_CHARS, type LogRecord, type Mutation, type Payload } from '../../envelope/envelope.js'

export const HEADER = {
  id: 'wal-id',
  createdAt: 'wal-created-at',
  encoding: 'wal-payload-encoding',
  notBefore: 'wal-not-before',
  target: 'wal-target',
  idempotencyKey: 'wal-idempotency-key',
  attempts: 'wal-attempts',
  failures: 'wal-failures',
} as const

const META_HEADERS: ReadonlySet<string> = new Set(Object.values(HEADER))

/** A record as kafkajs sends it. */
export interface OutgoingRecord {
  key: string
  value: Buffer | string
  headers: Record<string, string>
  timestamp: string
  partition?: number
}

/** A record as kafkajs reads it. */
export interface IncomingRecord {
  key: Buffer | null
  value: Buffer | null
  headers?: Record<string, Buffer | string | Array<Buffer | string> | undefined>
  timestamp: string
  offset: string
}

/** The record that stores a mutation; extra headers (DLQ context) are added after the mutation's. */
export function encodeRecord(m: Mutation, extraHeaders?: Record<string, string>): OutgoingRecord {
  const headers: Record<string, string> = { ...m.headers, [HEADER.id]: m.id }
  // The record timestamp carries createdAt; the header (ISO 8601 with microseconds) only when it has more
  // precision than milliseconds.
  if (!Number.isInteger(m.createdAtMs)) headers[HEADER.createdAt] = formatCreatedAt(m.createdAtMs)
  if (m.payload.encoding === 'base64') headers[HEADER.encoding] = 'base64'
  if (m.notBeforeMs !== null) headers[HEADER.notBefore] = String(m.notBeforeMs)
  if (m.target !== null) headers[HEADER.target] = m.target
  if (m.idempotencyKey !== null) headers[HEADER.idempotencyKey] = m.idempotencyKey
  if (m.attempts > 0) headers[HEADER.attempts] = String(m.attempts)
  const failures = failuresToJson(m.failures)
  if (failures !== null) headers[HEADER.failures] = failures
  if (extraHeaders) Object.assign(headers, extraHeaders)
  return {
    key: m.key,
    value: m.payload.encoding === 'json' ? m.payload.json : Buffer.from(m.payload.bytes),
    headers,
    timestamp: String(Math.floor(m.createdAtMs)),
  }
}

/**
 * The record as it is when a topic with this max.message.bytes takes it, else as ordered chunk records
 * (see log/chunks.ts), each within what one request may carry.
 */
export function chunkedRecords(record: OutgoingRecord, maxMessageBytes: number): OutgoingRecord[] {
  const budget = batchBudget(maxMessageBytes)
  // Nearly every record is far below the limit: an upper bound of its size (UTF-8 takes at most 3 bytes
  // per UTF-16 unit) settles it without encoding the value to count its bytes.
  if (recordBytesAtMost(record) + 256 <= budget) return [record]
  const room = budget - recordBytes({ ...record, value: '' }) - 256
  const value = typeof record.value === 'string' ? Buffer.from(record.value) : record.value
  if (value.length <= room || room <= 1024) return [record]
  return chunkValue(value, room).map((chunk) => ({ ...record, value: chunk.value, headers: { ...record.headers, ...chunk.headers } }))
}

/** At least recordBytes(record), counted in UTF-16 units (no encoding). */
function recordBytesAtMost(record: OutgoingRecord): number {
  let units = record.key.length + (typeof record.value === 'string' ? record.value.length : record.value.length / 3)
  let headers = 0
  for (const name in record.headers) {
    units += name.length + record.headers[name]!.length
    headers++
  }
  return 70 + 4 * headers + 3 * units
}

function headerText(value: Buffer | string | Array<Buffer | string> | undefined): string | undefined {
  if (value === undefined) return undefined
  // A repeated header: the last value wins, as in most Kafka clients' lastHeader().
  const one = Array.isArray(value) ? value.at(-1) : value
  return one === undefined ? undefined : typeof one === 'string' ? one : one.toString('utf8')
}

export { foreignRecordId }

const utf8 = new TextDecoder('utf-8', { fatal: true })

function foreignPayload(value: Buffer | null): Payload {
  if (value === null) return { encoding: 'json', json: 'null' }
  try {
    return { encoding: 'json', json: checkedJson(utf8.decode(value)) }
  } catch {
    return { encoding: 'base64', bytes: value }
  }
}

/** A number that a wal-* header holds: an integer (or a time) within range, else the record is poison. */
/** A time header as wal writes it (ISO 8601, or epoch milliseconds as earlier versions did), in range. */
function headerTime(name: string, text: string): number {
  const ms = parseTimeHeader(text)
  if (!Number.isFinite(ms) || !timeInRange(ms)) throw new Error(`header ${name} is ${JSON.stringify(text.slice(0, 40))}, not a time wal stores`)
  return ms
}

function headerNumber(name: string, text: string, time: boolean): number {
  const n = Number(text)
  const ok = time ? Number.isFinite(n) && timeInRange(n) : Number.isSafeInteger(n) && n >= 0
  if (!ok || text.trim() === '') throw new Error(`header ${name} is ${JSON.stringify(text.slice(0, 40))}, not ${time ? 'a time wal stores' : 'a count'}`)
  return n
}

/**
 * Reads a record back as a mutation at its position. A record with wal's `wal-id` header whose value or
 * wal-* headers cannot be decoded (a replicator that copied headers onto another value, a damaged byte)
 * comes back as poison (LogRecord.poison), never as a payload a target could be handed.
 */
export function decodeRecord(record: IncomingRecord, topic: string, partition: number, namespace: string): LogRecord {
  const raw = record.headers ?? {}
  // Header names are arbitrary: an object without a prototype keeps `__proto__` as a header.
  const headers = Object.create(null) as Record<string, string>
  let meta: Record<string, string> | undefined
  for (const name of Object.keys(raw)) {
    const value = headerText(raw[name])
    if (value === undefined) continue
    if (META_HEADERS.has(name)) (meta ??= Object.create(null) as Record<string, string>)[name] = value
    // Why a mutation died travels with its DLQ record only: it is not one of the mutation's headers.
    else if (!name.startsWith('wal-dlq-')) headers[name] = value
  }
  const offset = Number(record.offset)
  const timestampMs = Number(record.timestamp)
  const id = meta?.[HEADER.id]
  if (meta === undefined || id === undefined) {
    return {
      id: foreignRecordId(topic, partition, record.offset, timestampMs),
      namespace,
      // A record without a key has no order to keep: each is a key of its own.
      key: record.key === null || record.key.length === 0 ? `${topic}/${partition}/${record.offset}` : record.key.toString('utf8'),
      payload: foreignPayload(record.value),
      headers: meta ? Object.assign(headers, meta) : headers,
      createdAtMs: timestampMs,
      notBeforeMs: null,
      target: null,
      idempotencyKey: null,
      attempts: 0,
      failures: [],
      partition,
      offset,
      appendedAtMs: timestampMs,
    }
  }
  const value = record.value ?? Buffer.alloc(0)
  if (headers[CHUNK_HEADER] !== undefined) headers[CHUNK_ENCODING_HEADER] = meta[HEADER.encoding] === 'base64' ? 'base64' : 'json'
  try {
    const createdAt = meta[HEADER.createdAt]
    const notBefore = meta[HEADER.notBefore]
    const base64 = meta[HEADER.encoding] === 'base64'
    if (!base64 && meta[HEADER.encoding] !== undefined && meta[HEADER.encoding] !== 'json') throw new Error(`header ${HEADER.encoding} is ${JSON.stringify(meta[HEADER.encoding]!.slice(0, 40))}`)
    if (!ULID_PATTERN.test(id)) throw new Error(`header ${HEADER.id} ${JSON.stringify(id.slice(0, 40))} is not a ULID`)
    if (record.key !== null && !isUtf8(record.key)) throw new Error('the key is not valid UTF-8')
    if (record.key !== null && record.key.length > 4 * MAX_KEY_CHARS) throw new Error(`the key is longer than ${MAX_KEY_CHARS} characters`)
    return {
      id,
      namespace,
      key: record.key === null || record.key.length === 0 ? id : record.key.toString('utf8'),
      // A chunk of a larger payload (log/chunks.ts): its bytes as they are, put together by the reader.
      payload: base64 || headers[CHUNK_HEADER] !== undefined ? { encoding: 'base64', bytes: value } : { encoding: 'json', json: checkedJson(utf8.decode(value)) },
      headers,
      createdAtMs: createdAt === undefined ? headerNumber('timestamp', record.timestamp, true) : headerTime(HEADER.createdAt, createdAt),
      notBeforeMs: notBefore === undefined ? null : Math.floor(headerTime(HEADER.notBefore, notBefore)),
      target: meta[HEADER.target] ?? null,
      idempotencyKey: meta[HEADER.idempotencyKey] ?? null,
      attempts: meta[HEADER.attempts] === undefined ? 0 : headerNumber(HEADER.attempts, meta[HEADER.attempts]!, false),
      failures: decodeFailures(meta[HEADER.failures] ?? null),
      partition,
      offset,
      appendedAtMs: timestampMs,
    }
  } catch (error) {
    const reason = error instanceof TypeError ? 'the value is not valid UTF-8' : (error as Error).message
    return poisonRecord({
      id,
      key: record.key !== null && isUtf8(record.key) ? record.key.toString('utf8') : undefined,
      namespace,
      partition,
      offset,
      appendedAtMs: Number.isSafeInteger(timestampMs) && timeInRange(timestampMs) ? timestampMs : 0,
      location: topic,
      raw: value,
      error: `cannot decode the record at ${partition}:${record.offset} of topic ${topic}: ${reason}`,
    })
  }
}
