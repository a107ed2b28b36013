/**
 * How a mutation is stored as a Kafka record, so other Kafka clients can read it as an ordinary record:
 * the key is the mutation's key, the value is the payload (JSON text or the raw bytes), the record
 * timestamp is createdAt, and the user's headers are kept as they are. wal's own fields travel in
 * headers named `wal-*`, written only when they differ from their default.
 *
 * Records without a `wal-id` header were written by another producer: they are wrapped in an envelope
 * on read (a stable id derived from their position, the key as it is, JSON when the value is JSON and
 * base64 bytes otherwise) rather than rejected.
 */
import { createHash } from 'node:crypto'

import { formatCreatedAt, parseTimeHeader } from '../../envelope/created-at.js'
import { decodeFailures, failuresToJson, type LogRecord, type Mutation, type Payload } from '../../envelope/envelope.js'

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

function headerText(value: Buffer | string | Array<Buffer | string> | undefined): string | undefined {
  if (value === undefined) return undefined
  // A repeated header: the last value wins, as in most Kafka clients' lastHeader().
  const one = Array.isArray(value) ? value.at(-1) : value
  return one === undefined ? undefined : typeof one === 'string' ? one : one.toString('utf8')
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** A ULID for a record written by another producer: its time from the record, the rest from where it is. */
export function foreignRecordId(topic: string, partition: number, offset: string, timestampMs: number): string {
  let time = ''
  let t = Math.max(0, Math.min(timestampMs, 2 ** 48 - 1))
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time
    t = Math.floor(t / 32)
  }
  const digest = createHash('sha256').update(`${topic}/${partition}/${offset}`).digest()
  let rest = ''
  for (let i = 0; i < 16; i++) rest += CROCKFORD[digest[i]! % 32]
  return time + rest
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function foreignPayload(value: Buffer | null): Payload {
  if (value === null) return { encoding: 'json', json: 'null' }
  try {
    const text = utf8.decode(value)
    JSON.parse(text)
    return { encoding: 'json', json: text }
  } catch {
    return { encoding: 'base64', bytes: value }
  }
}

/** Reads a record back as a mutation at its position. */
export function decodeRecord(record: IncomingRecord, topic: string, partition: number, namespace: string): LogRecord {
  const raw = record.headers ?? {}
  const headers: Record<string, string> = {}
  let meta: Record<string, string> | undefined
  for (const name in raw) {
    const value = headerText(raw[name])
    if (value === undefined) continue
    if (META_HEADERS.has(name)) (meta ??= {})[name] = value
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
      headers: meta ? { ...headers, ...meta } : headers,
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
  const createdAt = meta[HEADER.createdAt]
  const notBefore = meta[HEADER.notBefore]
  return {
    id,
    namespace,
    key: record.key?.toString('utf8') ?? id,
    payload: meta[HEADER.encoding] === 'base64' ? { encoding: 'base64', bytes: value } : { encoding: 'json', json: value.toString('utf8') },
    headers,
    createdAtMs: createdAt === undefined ? timestampMs : parseTimeHeader(createdAt),
    notBeforeMs: notBefore === undefined ? null : Number(notBefore),
    target: meta[HEADER.target] ?? null,
    idempotencyKey: meta[HEADER.idempotencyKey] ?? null,
    attempts: Number(meta[HEADER.attempts] ?? 0),
    failures: decodeFailures(meta[HEADER.failures] ?? null),
    partition,
    offset,
    appendedAtMs: timestampMs,
  }
}
