/**
 * The mutation envelope: the one JSON shape used everywhere a mutation crosses a boundary — `produce`
 * input, `tail --json` output, DLQ export and replay. Version 1. This module alone encodes and decodes
 * it, so a round trip (tail → produce) is lossless by construction.
 *
 * Wire form (one JSON object per line):
 *   {"v":1,"id":"01J…","namespace":"orders","key":"user-42","payload":{…},"payloadEncoding":"json",
 *    "headers":{"k":"v"},"createdAt":"2026-…Z","notBefore":null,"target":null,"idempotencyKey":null,
 *    "attempts":0,"failures":[],"partition":3,"offset":41,"appendedAt":"2026-…Z"}
 * Only `payload` is required on input. `partition`, `offset` and `appendedAt` describe where a record was
 * read from; they are accepted on input and ignored, since the log assigns them anew.
 */
import * as v from 'valibot'

import { InvalidRecordError } from '../errors.js'
import { expectedOf } from '../validation.js'
import { formatCreatedAt, parseCreatedAt } from './created-at.js'
import { newMutationId } from './id.js'

export const ENVELOPE_VERSION = 1
/** At most this many failures are kept per mutation: the oldest are dropped first. */
export const MAX_FAILURES = 10
/** Failure messages are cut to this length. */
export const MAX_FAILURE_MESSAGE_CHARS = 1000
export const MAX_KEY_CHARS = 1024
export const MAX_HEADER_BYTES = 64 * 1024

/** How the target should treat an error. */
export type ErrorClass = 'retryable' | 'fatal' | 'infrastructure'

/** One failed attempt to apply a mutation to a target. */
export interface Failure {
  atMs: number
  target: string
  errorClass: ErrorClass
  message: string
  attempt: number
  code?: string
}

/** The payload: JSON (kept as its serialized text) or raw bytes. */
export type Payload = { encoding: 'json'; json: string } | { encoding: 'base64'; bytes: Uint8Array }

/** A mutation as the log stores it. */
export interface Mutation {
  id: string
  namespace: string
  key: string
  payload: Payload
  headers: Record<string, string>
  /** Original write time: epoch milliseconds, with up to three decimals (microseconds; see created-at.ts). */
  createdAtMs: number
  /** Do not deliver before this time (delay queue). */
  notBeforeMs: number | null
  /** Deliver only to this target of the namespace instead of all of them. */
  target: string | null
  idempotencyKey: string | null
  attempts: number
  failures: Failure[]
}

/** A mutation read back from a log, with its position. */
export interface LogRecord extends Mutation {
  partition: number
  offset: number
  appendedAtMs: number
}

export const NAMESPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/

export const NamespaceName = v.pipe(
  v.string(),
  v.regex(NAMESPACE_PATTERN, 'a namespace name: 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit'),
)

const TimeInput = v.union(
  [
    v.pipe(v.number(), v.integer(), v.minValue(0)),
    v.pipe(
      v.string(),
      v.check((s) => !Number.isNaN(Date.parse(s)), 'an ISO 8601 time'),
    ),
  ],
  'an ISO 8601 time or epoch milliseconds',
)

const NonNegativeInt = v.pipe(v.number(), v.integer(), v.minValue(0))

const FailureInput = v.strictObject({
  at: TimeInput,
  target: v.string(),
  errorClass: v.picklist(['retryable', 'fatal', 'infrastructure']),
  message: v.string(),
  attempt: v.pipe(v.number(), v.integer(), v.minValue(1)),
  code: v.optional(v.string()),
})

const EnvelopeInput = v.strictObject({
  v: v.optional(v.literal(ENVELOPE_VERSION, `envelope version ${ENVELOPE_VERSION}`)),
  id: v.optional(v.pipe(v.string(), v.regex(ULID_PATTERN, 'a 26-character ULID'))),
  namespace: v.optional(NamespaceName),
  key: v.optional(v.pipe(v.string(), v.minLength(1, 'a non-empty key'), v.maxLength(MAX_KEY_CHARS))),
  payload: v.pipe(
    v.unknown(),
    v.check((p) => p !== undefined, 'a payload'),
  ),
  payloadEncoding: v.optional(v.picklist(['json', 'base64'])),
  headers: v.optional(v.record(v.string(), v.string('a string header value'))),
  createdAt: v.optional(TimeInput),
  notBefore: v.optional(v.nullable(TimeInput)),
  target: v.optional(v.nullable(v.pipe(v.string(), v.minLength(1)))),
  idempotencyKey: v.optional(v.nullable(v.pipe(v.string(), v.minLength(1), v.maxLength(512)))),
  attempts: v.optional(NonNegativeInt),
  failures: v.optional(v.array(FailureInput)),
  partition: v.optional(NonNegativeInt),
  offset: v.optional(NonNegativeInt),
  appendedAt: v.optional(TimeInput),
})

/** The fields of the envelope, for messages. */
export const ENVELOPE_FIELDS = Object.keys(EnvelopeInput.entries)

/** Values applied to a decoded envelope where it has none. */
export interface DecodeDefaults {
  namespace: string
  /** Overrides the envelope's namespace (produce -n into another namespace). */
  forceNamespace?: boolean
  nowMs: number
  /** createdAt for envelopes that have none (called once per mutation); default: nowMs. */
  createdAtMs?: () => number
  headers?: Record<string, string>
  /** The delivery time for envelopes that have none (called once per mutation, so jitter can vary). */
  notBefore?: () => number | null
  target?: string | null
}

function toMs(time: number | string): number {
  return typeof time === 'number' ? time : Date.parse(time)
}

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const path = v.getDotPath(issue)
  if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.input !== undefined && path) {
    return `unknown field "${path}" (known fields: ${ENVELOPE_FIELDS.join(', ')})`
  }
  const where = path ? `field "${path}"` : 'the line'
  const expected = expectedOf(issue)
  if (issue.received === 'undefined' && path) return `${where} is missing (expected ${expected})`
  return `${where}: expected ${expected}, found ${issue.received}`
}

function base64ToBytes(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) {
    throw new InvalidRecordError('field "payload": payloadEncoding is "base64" but payload is not valid base64', {
      code: 'WAL_RECORD_INVALID',
    })
  }
  return Buffer.from(text, 'base64')
}

/**
 * Decodes one parsed envelope into a Mutation, applying defaults. Throws InvalidRecordError with the
 * field and what was expected.
 */
export function decodeEnvelope(input: unknown, defaults: DecodeDefaults): Mutation {
  const quick = decodeCommonEnvelope(input, defaults)
  if (quick !== undefined) return quick
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidRecordError(`expected a JSON object (an envelope), found ${Array.isArray(input) ? 'an array' : typeof input}`)
  }
  const result = v.safeParse(EnvelopeInput, input)
  if (!result.success) {
    throw new InvalidRecordError(describeIssue(result.issues[0]), { details: { issues: result.issues.length } })
  }
  const e = result.output
  const payload: Payload =
    e.payloadEncoding === 'base64'
      ? typeof e.payload === 'string'
        ? { encoding: 'base64', bytes: base64ToBytes(e.payload) }
        : (() => {
            throw new InvalidRecordError('field "payload": payloadEncoding is "base64", so payload must be a base64 string')
          })()
      : { encoding: 'json', json: JSON.stringify(e.payload) }
  const id = e.id ?? newMutationId(defaults.nowMs)
  const headers = defaults.headers ? { ...defaults.headers, ...e.headers } : (e.headers ?? {})
  return {
    id,
    namespace: defaults.forceNamespace ? defaults.namespace : (e.namespace ?? defaults.namespace),
    key: e.key ?? id,
    payload,
    headers,
    createdAtMs: e.createdAt === undefined ? (defaults.createdAtMs?.() ?? defaults.nowMs) : typeof e.createdAt === 'number' ? e.createdAt : parseCreatedAt(e.createdAt),
    notBeforeMs: e.notBefore === undefined ? (defaults.notBefore?.() ?? null) : e.notBefore === null ? null : toMs(e.notBefore),
    target: e.target === undefined ? (defaults.target ?? null) : e.target,
    idempotencyKey: e.idempotencyKey ?? null,
    attempts: e.attempts ?? 0,
    failures: (e.failures ?? []).slice(-MAX_FAILURES).map((f) => ({
      atMs: toMs(f.at),
      target: f.target,
      errorClass: f.errorClass,
      message: f.message.slice(0, MAX_FAILURE_MESSAGE_CHARS),
      attempt: f.attempt,
      ...(f.code === undefined ? {} : { code: f.code }),
    })),
  }
}

/**
 * The shape most producers send — a key and a JSON payload, nothing else — decoded without the schema
 * walk (the hot path of `wal produce`). Anything else, valid or not, returns undefined and goes through
 * the schema, which also words the errors.
 */
function decodeCommonEnvelope(input: unknown, defaults: DecodeDefaults): Mutation | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined
  let fields = 0
  for (const name in input) {
    if (name !== 'key' && name !== 'payload') return undefined
    fields++
  }
  const { key, payload } = input as { key?: unknown; payload?: unknown }
  if (payload === undefined || (fields === 2 && (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_CHARS))) return undefined
  const id = newMutationId(defaults.nowMs)
  return {
    id,
    namespace: defaults.namespace,
    key: (key as string | undefined) ?? id,
    payload: { encoding: 'json', json: JSON.stringify(payload) },
    headers: defaults.headers ? { ...defaults.headers } : {},
    createdAtMs: defaults.createdAtMs?.() ?? defaults.nowMs,
    notBeforeMs: defaults.notBefore?.() ?? null,
    target: defaults.target ?? null,
    idempotencyKey: null,
    attempts: 0,
    failures: [],
  }
}

/** Decodes one NDJSON line. */
export function decodeEnvelopeLine(line: string, defaults: DecodeDefaults): Mutation {
  let parsed: unknown
  try {
    parsed = JSON.parse(line)
  } catch (error) {
    throw new InvalidRecordError(`not valid JSON: ${(error as Error).message}`, { code: 'WAL_RECORD_MALFORMED' })
  }
  return decodeEnvelope(parsed, defaults)
}

/** Size of the payload in bytes, as stored. */
export function payloadBytes(payload: Payload): number {
  return payload.encoding === 'json' ? Buffer.byteLength(payload.json) : payload.bytes.byteLength
}

/** Size of the headers in bytes, as stored. */
export function headerBytes(headers: Record<string, string>): number {
  let total = 0
  for (const name in headers) total += Buffer.byteLength(name) + Buffer.byteLength(headers[name]!)
  return total
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function encodeFailures(failures: readonly Failure[]): string {
  return JSON.stringify(
    failures.map((f) => ({
      at: iso(f.atMs),
      target: f.target,
      errorClass: f.errorClass,
      message: f.message,
      attempt: f.attempt,
      ...(f.code === undefined ? {} : { code: f.code }),
    })),
  )
}

/** Encodes a mutation (and its position, when read from a log) as one line of JSON, without newline. */
export function encodeEnvelope(m: Mutation | LogRecord): string {
  const payload = m.payload.encoding === 'json' ? m.payload.json : JSON.stringify(Buffer.from(m.payload.bytes).toString('base64'))
  let line =
    `{"v":${ENVELOPE_VERSION},"id":${JSON.stringify(m.id)},"namespace":${JSON.stringify(m.namespace)}` +
    `,"key":${JSON.stringify(m.key)},"payload":${payload},"payloadEncoding":"${m.payload.encoding}"` +
    `,"headers":${JSON.stringify(m.headers)},"createdAt":"${formatCreatedAt(m.createdAtMs)}"` +
    `,"notBefore":${m.notBeforeMs === null ? 'null' : `"${iso(m.notBeforeMs)}"`}` +
    `,"target":${JSON.stringify(m.target)},"idempotencyKey":${JSON.stringify(m.idempotencyKey)}` +
    `,"attempts":${m.attempts},"failures":${encodeFailures(m.failures)}`
  if ('partition' in m) line += `,"partition":${m.partition},"offset":${m.offset},"appendedAt":"${iso(m.appendedAtMs)}"`
  return `${line}}`
}

/** Serializes failures for storage; the inverse of decodeFailures. */
export function failuresToJson(failures: readonly Failure[]): string | null {
  return failures.length === 0 ? null : encodeFailures(failures)
}

/** Reads failures stored by failuresToJson. */
export function decodeFailures(json: string | null): Failure[] {
  if (json === null) return []
  const raw = JSON.parse(json) as Array<Omit<Failure, 'atMs'> & { at: string }>
  return raw.map(({ at, ...failure }) => ({ ...failure, atMs: Date.parse(at) }))
}
