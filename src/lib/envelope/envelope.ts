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
import { MAX_TIME_MS, MIN_TIME_MS, parseStrictIsoTimeMs, timeInRange } from '../time.js'
import { expectedOf } from '../validation.js'
import { formatCreatedAt, isoTime, parseCreatedAt } from './created-at.js'
import { newMutationId, ULID_PATTERN } from './id.js'
import { TXN_COMMIT_HEADER, TXN_HEADER, TXN_ID_EXPECTED, TXN_ID_PATTERN } from '../txn/names.js'
import { jsonDepth, JsonScanError, MAX_PAYLOAD_DEPTH, scanKeyPayloadLine, scanObjectField, type ValueSpan } from './json-text.js'

export const ENVELOPE_VERSION = 1
/** At most this many failures are kept per mutation: the oldest are dropped first. */
export const MAX_FAILURES = 10
/** Failure messages are cut to this length. */
export const MAX_FAILURE_MESSAGE_CHARS = 1000
export const MAX_KEY_CHARS = 1024
export const MAX_HEADER_BYTES = 64 * 1024
export const MAX_IDEMPOTENCY_KEY_CHARS = 512
/** Target names and failure codes. */
export const MAX_NAME_CHARS = 256

/** How a record that cannot be decoded on read is dead-lettered (see LogRecord.poison). */
export const POISON_CODE = 'WAL_RECORD_POISON'

/** How the target should treat an error. */
/** `poison`: a record in the log that cannot be decoded (never applied; dead-lettered as it was read). */
/** `txn-aborted`: a transaction whose completion marker never came (txn/txn.ts); none of it is applied. */
export type ErrorClass = 'retryable' | 'fatal' | 'infrastructure' | 'poison' | 'txn-aborted'

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
  /**
   * Set when the record in the log cannot be decoded (an older or foreign writer, a damaged byte): the
   * other fields are a stand-in (id and key when known, the raw stored bytes as a base64 payload).
   * Readers never apply it: consumers dead-letter it as class `poison`, tail prints it marked.
   */
  poison?: { error: string }
}

export const NAMESPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export const NamespaceName = v.pipe(
  v.string(),
  v.regex(NAMESPACE_PATTERN, 'a namespace name: 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit'),
)

/** Whether a string has no lone UTF-16 surrogate (String#isWellFormed, ES2024; Node 20+). */
export function isWellFormed(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed()
}

/** At most `maxChars` UTF-16 units of text, never ending in half a surrogate pair, with no lone surrogates. */
export function cutText(text: string, maxChars: number): string {
  let cut = text.length > maxChars ? text.slice(0, maxChars) : text
  if (!isWellFormed(cut)) cut = (cut as unknown as { toWellFormed(): string }).toWellFormed()
  return cut
}

/** How a time must be written, for messages. */
export const TIME_EXPECTED = `an ISO 8601 time with a zone (2026-12-01T09:00:00Z) or integer epoch milliseconds, from ${new Date(MIN_TIME_MS).toISOString()} to ${new Date(MAX_TIME_MS).toISOString()}`

/** Epoch ms of an envelope time (microseconds kept), or undefined when it is not one or out of range. */
function timeMsOf(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && timeInRange(value) ? value : undefined
  if (typeof value !== 'string') return undefined
  const ms = parseStrictIsoTimeMs(value)
  if (ms === undefined || !timeInRange(ms)) return undefined
  return parseCreatedAt(value)
}

const TimeInput = v.pipe(
  v.union([v.number(), v.string()], TIME_EXPECTED),
  v.check((t) => timeMsOf(t) !== undefined, TIME_EXPECTED),
)

const NonNegativeInt = v.pipe(v.number(), v.safeInteger('a whole number from 0 to 2^53-1'), v.minValue(0, 'a whole number from 0 to 2^53-1'))

/** A string that is text: no lone UTF-16 surrogates, which cannot be stored as UTF-8 without changing. */
const Text = v.pipe(v.string(), v.check((s) => isWellFormed(s), 'text without lone UTF-16 surrogates (\\ud800-\\udfff)'))

/**
 * Diagnostic text (a failure's message, target, code): cut to a length and made well-formed rather
 * than refused, since wal writes it itself from what targets answered, and a history must never make
 * the mutation it belongs to unreadable.
 */
const DiagnosticText = (maxChars: number) => v.pipe(v.string(), v.transform((text: string) => cutText(text, maxChars)))

const FailureInput = v.strictObject({
  at: TimeInput,
  target: DiagnosticText(MAX_NAME_CHARS),
  errorClass: v.picklist(['retryable', 'fatal', 'infrastructure', 'poison', 'txn-aborted']),
  message: DiagnosticText(MAX_FAILURE_MESSAGE_CHARS),
  attempt: v.pipe(v.number(), v.safeInteger('a whole number from 1 to 2^53-1'), v.minValue(1, 'a whole number from 1 to 2^53-1')),
  code: v.optional(DiagnosticText(MAX_NAME_CHARS)),
})

/** A failure as the envelope holds it, from its checked input form. */
function failureOf(f: v.InferOutput<typeof FailureInput>): Failure {
  return {
    atMs: Math.floor(timeMsOf(f.at)!),
    target: f.target,
    errorClass: f.errorClass,
    message: f.message,
    attempt: f.attempt,
    ...(f.code === undefined ? {} : { code: f.code }),
  }
}

const EnvelopeInput = v.strictObject({
  v: v.optional(v.literal(ENVELOPE_VERSION, `envelope version ${ENVELOPE_VERSION}`)),
  id: v.optional(v.pipe(v.string(), v.regex(ULID_PATTERN, 'a 26-character ULID'))),
  namespace: v.optional(NamespaceName),
  key: v.optional(v.pipe(Text, v.minLength(1, 'a non-empty key'), v.maxLength(MAX_KEY_CHARS))),
  // Required, except on a transaction's marker (checked in decodeEnvelope).
  payload: v.optional(v.unknown()),
  payloadEncoding: v.optional(v.picklist(['json', 'base64'])),
  // Checked by decodeHeaders: names are arbitrary strings, which a schema's object would not keep.
  headers: v.optional(v.unknown()),
  createdAt: v.optional(TimeInput),
  notBefore: v.optional(v.nullable(TimeInput)),
  target: v.optional(v.nullable(v.pipe(Text, v.minLength(1), v.maxLength(MAX_NAME_CHARS)))),
  idempotencyKey: v.optional(v.nullable(v.pipe(Text, v.minLength(1), v.maxLength(MAX_IDEMPOTENCY_KEY_CHARS)))),
  attempts: v.optional(NonNegativeInt),
  failures: v.optional(v.array(FailureInput)),
  partition: v.optional(NonNegativeInt),
  offset: v.optional(NonNegativeInt),
  appendedAt: v.optional(TimeInput),
  /** A part of this transaction; with `commit: true`, its completion marker (see txn/txn.ts). */
  txn: v.optional(v.pipe(v.string(), v.regex(TXN_ID_PATTERN, TXN_ID_EXPECTED))),
  commit: v.optional(v.literal(true, 'true (on a transaction\'s marker: {"txn": ID, "commit": true})')),
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
  /** The delivery time for envelopes that have none or null (called once per mutation, so jitter can vary). */
  notBefore?: () => number | null
  /** The target for envelopes that have none or null. */
  target?: string | null
  /**
   * The envelope comes from a user (`wal produce`, the HTTP API), not from wal's own storage: headers in
   * wal's namespace (see reservedHeader) are refused.
   */
  fromUser?: boolean
}

/**
 * Header names wal keeps its own fields in (`wal-id`, `wal-txn`, `wal-chunk`, `wal-attempts`, …, on every
 * backend): a user's header of that name would be lost, or change what wal does with the mutation, so
 * it is refused at the door. `wal-replays` (the DLQ replay count) may travel with a copy made by
 * `tail --json | produce`: it only makes the replay guard stricter.
 */
export function reservedHeader(name: string): boolean {
  return name.startsWith('wal-') && name !== 'wal-replays'
}

export const RESERVED_HEADER_HINT = 'header names starting with "wal-" are wal\'s own: rename the header (for a transaction part, use the "txn" field)'

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const path = v.getDotPath(issue)
  if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.input !== undefined && path) {
    return `unknown field ${JSON.stringify(path)} (known fields: ${ENVELOPE_FIELDS.join(', ')})`
  }
  const where = path ? `field ${JSON.stringify(path)}` : 'the line'
  const expected = expectedOf(issue)
  if (issue.received === 'undefined' && path) return `${where} is missing (expected ${expected})`
  return `${where}: expected ${expected}, found ${received(issue)}`
}

/** What was found, short: a long string or number is not echoed whole. */
function received(issue: v.BaseIssue<unknown>): string {
  const input = issue.input
  if (typeof input === 'string') return input.length > 40 ? `a string of ${input.length} characters` : escapeControl(JSON.stringify(input))
  if (typeof input === 'number') return String(input)
  return issue.received
}

/** Control characters spelled as escapes, so a message never carries them raw. */
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function base64ToBytes(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) {
    throw new InvalidRecordError('field "payload": payloadEncoding is "base64" but payload is not valid base64', {
      code: 'WAL_RECORD_INVALID',
    })
  }
  return Buffer.from(text, 'base64')
}

function kindOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
}

/**
 * Headers from an envelope: an object whose names are any strings (`__proto__` included: kept in an
 * object without a prototype) and whose values are strings. Anything else is refused, not reshaped.
 */
function decodeHeaders(value: unknown, defaults: Record<string, string> | undefined, fromUser: boolean | undefined): Record<string, string> {
  const headers = Object.create(null) as Record<string, string>
  if (defaults) Object.assign(headers, defaults)
  if (value === undefined) return headers
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRecordError(`field "headers": expected an object of header names to string values, found ${kindOf(value)}`)
  }
  for (const name of Object.keys(value)) {
    const text = (value as Record<string, unknown>)[name]
    if (typeof text !== 'string') {
      throw new InvalidRecordError(`field ${escapeControl(JSON.stringify(`headers.${name}`))}: expected a string header value, found ${kindOf(text)}`)
    }
    if (!isWellFormed(name) || !isWellFormed(text)) {
      throw new InvalidRecordError(`field "headers": header ${escapeControl(JSON.stringify(name))} has a lone UTF-16 surrogate, which cannot be stored unchanged`)
    }
    if (fromUser && reservedHeader(name)) {
      throw new InvalidRecordError(`field "headers": header ${escapeControl(JSON.stringify(name))} is reserved`, { suggestions: [RESERVED_HEADER_HINT] })
    }
    headers[name] = text
  }
  return headers
}

/** Headers of a transaction's part: the `txn` field becomes the wal-txn header (see txn/txn.ts). */
function withTxn(headers: Record<string, string>, txn: string | undefined): Record<string, string> {
  if (txn !== undefined) headers[TXN_HEADER] = txn
  return headers
}

/** No headers: shared, and frozen so that nothing can add to it by mistake. */
/** No headers: one shared, frozen object for the common case (a mutation's headers are never changed in place). */
export const NO_HEADERS: Record<string, string> = Object.freeze(Object.create(null) as Record<string, string>)

/** A copy of headers in an object without a prototype (for every path that builds a mutation). */
export function headerMap(from?: Record<string, string>): Record<string, string> {
  const headers = Object.create(null) as Record<string, string>
  if (from) for (const name of Object.keys(from)) headers[name] = from[name]!
  return headers
}

function payloadOf(e: { payload: unknown; payloadEncoding?: 'json' | 'base64' }, payloadText: string | undefined): Payload {
  if (e.payloadEncoding === 'base64') {
    if (typeof e.payload !== 'string') throw new InvalidRecordError('field "payload": payloadEncoding is "base64", so payload must be a base64 string')
    return { encoding: 'base64', bytes: base64ToBytes(e.payload) }
  }
  if (payloadText !== undefined) return { encoding: 'json', json: payloadText }
  let json: string
  try {
    json = JSON.stringify(e.payload)
  } catch (error) {
    throw new InvalidRecordError(`field "payload": cannot be written as JSON: ${(error as Error).message}`)
  }
  return { encoding: 'json', json }
}

/**
 * Decodes one parsed envelope into a Mutation, applying defaults. Throws InvalidRecordError with the
 * field and what was expected. `payloadText` is the payload's exact text in the line it came from:
 * kept as it is (see json-text.ts), but for line breaks, which JSON allows only between tokens (a
 * pretty-printed -p, file or HTTP body): they become spaces, so that every envelope is one NDJSON line
 * (`tail --json`, `dlq export`, a file target) and reads back as it was. Without it, the parsed payload
 * is written as JSON again.
 */
export function decodeEnvelope(input: unknown, defaults: DecodeDefaults, payloadText?: string): Mutation {
  if (payloadText !== undefined) payloadText = oneLine(payloadText)
  const quick = decodeCommonEnvelope(input, defaults, payloadText)
  if (quick !== undefined) return quick
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidRecordError(`expected a JSON object (an envelope), found ${kindOf(input)}`)
  }
  const result = v.safeParse(EnvelopeInput, input)
  if (!result.success) {
    throw new InvalidRecordError(describeIssue(result.issues[0]), { details: { issues: result.issues.length } })
  }
  const e = result.output
  if (e.commit === true && e.txn === undefined) throw new InvalidRecordError('field "commit": a marker names its transaction: {"txn": ID, "commit": true}')
  if (e.commit === true) {
    // A marker: wal writes its key, payload and headers (the producer adds the part count).
    const headers = headerMap()
    headers[TXN_HEADER] = e.txn!
    headers[TXN_COMMIT_HEADER] = ''
    const id = e.id ?? newMutationId(defaults.nowMs)
    return {
      id,
      namespace: defaults.forceNamespace ? defaults.namespace : (e.namespace ?? defaults.namespace),
      key: e.txn!,
      payload: { encoding: 'json', json: JSON.stringify({ txn: e.txn }) },
      headers,
      createdAtMs: e.createdAt === undefined ? (defaults.createdAtMs?.() ?? defaults.nowMs) : timeMsOf(e.createdAt)!,
      notBeforeMs: null,
      target: null,
      idempotencyKey: null,
      attempts: 0,
      failures: [],
    }
  }
  if (e.payload === undefined) throw new InvalidRecordError('field "payload" is missing (expected a payload)')
  const payload = payloadOf({ payload: e.payload, payloadEncoding: e.payloadEncoding }, payloadText)
  const id = e.id ?? newMutationId(defaults.nowMs)
  const createdAtMs = e.createdAt === undefined ? (defaults.createdAtMs?.() ?? defaults.nowMs) : timeMsOf(e.createdAt)!
  return {
    id,
    namespace: defaults.forceNamespace ? defaults.namespace : (e.namespace ?? defaults.namespace),
    key: e.key ?? id,
    payload,
    headers: withTxn(decodeHeaders(e.headers, defaults.headers, defaults.fromUser), e.txn),
    createdAtMs,
    // A line's own non-null value wins; a missing or null one takes the flag's (tail --json writes
    // explicit nulls, and `tail --json | produce --target T --delay 1m` must honour T and the delay).
    notBeforeMs: e.notBefore == null ? (defaults.notBefore?.() ?? null) : Math.floor(timeMsOf(e.notBefore)!),
    target: e.target ?? defaults.target ?? null,
    idempotencyKey: e.idempotencyKey ?? null,
    attempts: e.attempts ?? 0,
    failures: (e.failures ?? []).slice(-MAX_FAILURES).map(failureOf),
  }
}

/**
 * The shape most producers send — a key and a JSON payload, nothing else — decoded without the schema
 * walk (the hot path of `wal produce`). Anything else, valid or not, returns undefined and goes through
 * the schema, which also words the errors.
 */
function decodeCommonEnvelope(input: unknown, defaults: DecodeDefaults, payloadText: string | undefined): Mutation | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input) || payloadText === undefined) return undefined
  let fields = 0
  for (const name in input) {
    if (name !== 'key' && name !== 'payload') return undefined
    fields++
  }
  const { key, payload } = input as { key?: unknown; payload?: unknown }
  if (payload === undefined || (fields === 2 && !commonKey(key))) return undefined
  return commonMutation(key as string | undefined, payloadText, defaults)
}

/** A key the common shape takes as it is: anything else goes through the schema, which says why not. */
function commonKey(key: unknown): key is string {
  return typeof key === 'string' && key.length > 0 && key.length <= MAX_KEY_CHARS && isWellFormed(key)
}

/** The mutation of an envelope of the common shape: its key (or none) and its payload's exact text. */
function commonMutation(key: string | undefined, payloadText: string, defaults: DecodeDefaults): Mutation {
  const id = newMutationId(defaults.nowMs)
  return {
    id,
    namespace: defaults.namespace,
    key: key ?? id,
    payload: { encoding: 'json', json: payloadText },
    headers: defaults.headers ? headerMap(defaults.headers) : NO_HEADERS,
    createdAtMs: defaults.createdAtMs?.() ?? defaults.nowMs,
    notBeforeMs: defaults.notBefore?.() ?? null,
    target: defaults.target ?? null,
    idempotencyKey: null,
    attempts: 0,
    failures: [],
  }
}

/**
 * A line of the common shape (see scanKeyPayloadLine), decoded from its text without parsing it into
 * objects: most of `wal produce`'s time per line went to JSON.parse and collecting what it built. Any
 * other line, and one whose key the common shape does not take, returns undefined.
 */
function decodeCommonLine(line: string, defaults: DecodeDefaults): Mutation | undefined {
  const spans = scanKeyPayloadLine(line, MAX_PAYLOAD_DEPTH)
  if (spans === undefined) return undefined
  let key: string | undefined
  if (spans.keyStart !== -1) {
    const text = line.slice(spans.keyStart + 1, spans.keyEnd - 1)
    // A key with escapes is read by JSON.parse (the string is known to be valid JSON).
    key = text.includes('\\') ? (JSON.parse(line.slice(spans.keyStart, spans.keyEnd)) as string) : text
    if (!commonKey(key)) return undefined
  }
  return commonMutation(key, oneLine(line.slice(spans.payloadStart, spans.payloadEnd)), defaults)
}

/** A payload's text with its line breaks (JSON has them only between tokens) as spaces: see decodeEnvelope. */
function oneLine(text: string): string {
  return text.includes('\n') || text.includes('\r') ? text.replace(/[\r\n]/g, ' ') : text
}

/** Why a text is not JSON, in words that do not echo control characters or pages of input. */
export function notJsonReason(text: string, error: unknown): string {
  if (text.charCodeAt(0) === 0xfeff) return 'starts with a byte order mark (U+FEFF): write UTF-8 without a BOM'
  let message = (error as Error).message
  if (message.length > 200) message = `${message.slice(0, 200)}…`
  return escapeControl(message)
}

/**
 * Parses JSON text known to be shallow enough (see json-text.ts), or throws InvalidRecordError.
 * `what` names it in the message ("the line", "the payload").
 */
export function parseJsonText(text: string, what?: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new InvalidRecordError(`${what === undefined ? '' : `${what} is `}not valid JSON: ${notJsonReason(text, error)}`, { code: 'WAL_RECORD_MALFORMED' })
  }
}

/** Decodes one NDJSON line: depth checked first, then parsed, with the payload kept as its exact text. */
export function decodeEnvelopeLine(line: string, defaults: DecodeDefaults): Mutation {
  const common = decodeCommonLine(line, defaults)
  if (common !== undefined) return common
  let span: ValueSpan | undefined
  try {
    span = scanObjectField(line, 'payload')
  } catch (error) {
    if (!(error instanceof JsonScanError)) throw error
    throw new InvalidRecordError(`the line is ${error.message}, at character ${error.at + 1}`, { code: 'WAL_RECORD_TOO_DEEP' })
  }
  const parsed = parseJsonText(line)
  return decodeEnvelope(parsed, defaults, span === undefined ? undefined : line.slice(span.start, span.end))
}

/**
 * Checks a payload given on its own (`-p`, a file): not deeper than MAX_PAYLOAD_DEPTH, valid JSON.
 * Returns the parsed value; the text itself is what is stored.
 */
export function parsePayloadText(text: string, what: string): unknown {
  const depth = jsonDepth(text, MAX_PAYLOAD_DEPTH)
  if (depth > MAX_PAYLOAD_DEPTH) throw new InvalidRecordError(`${what} is nested more than ${MAX_PAYLOAD_DEPTH} levels deep (the limit of a payload)`, { code: 'WAL_RECORD_TOO_DEEP' })
  return parseJsonText(text, what)
}

/**
 * The door's last word on a mutation built by code rather than decoded (a DLQ replay's copy): every
 * field within what every backend and reader can hold. Throws InvalidRecordError.
 */
export function assertStorable(m: Mutation): void {
  const bad = (field: string, expected: string): never => {
    throw new InvalidRecordError(`field "${field}": expected ${expected}`)
  }
  if (!timeInRange(m.createdAtMs)) bad('createdAt', TIME_EXPECTED)
  if (m.notBeforeMs !== null && !(Number.isInteger(m.notBeforeMs) && timeInRange(m.notBeforeMs))) bad('notBefore', TIME_EXPECTED)
  if (!Number.isSafeInteger(m.attempts) || m.attempts < 0) bad('attempts', 'a whole number from 0 to 2^53-1')
  if (m.key.length === 0 || m.key.length > MAX_KEY_CHARS || !isWellFormed(m.key)) bad('key', `a non-empty key of at most ${MAX_KEY_CHARS} characters`)
  for (const name of Object.keys(m.headers)) if (typeof m.headers[name] !== 'string') bad('headers', 'string values')
  for (const f of m.failures) if (!timeInRange(f.atMs)) bad('failures', TIME_EXPECTED)
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
  return isoTime(ms)
}

function encodeFailures(failures: readonly Failure[]): string {
  // Nearly every mutation has none: what JSON.stringify would write, without the array it maps to.
  if (failures.length === 0) return '[]'
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

function hasAny(headers: Record<string, string>): boolean {
  for (const _name in headers) return true
  return false
}

const ENVELOPE_PREFIX = `{"v":${ENVELOPE_VERSION},"id":`

/** Encodes a mutation (and its position, when read from a log) as one line of JSON, without newline. */
export function encodeEnvelope(m: Mutation | LogRecord): string {
  const { payload } = m
  // The pieces joined once, into one flat string: a template of this many pieces made a chain of a
  // string per piece, copied again into one when the line was written (a file consumer's largest
  // allocation, and a quarter of its encoding time).
  const parts = [
    ENVELOPE_PREFIX,
    JSON.stringify(m.id),
    ',"namespace":',
    JSON.stringify(m.namespace),
    ',"key":',
    JSON.stringify(m.key),
    ',"payload":',
    payload.encoding === 'json' ? payload.json : JSON.stringify(Buffer.from(payload.bytes).toString('base64')),
    payload.encoding === 'json' ? ',"payloadEncoding":"json","headers":' : ',"payloadEncoding":"base64","headers":',
    hasAny(m.headers) ? JSON.stringify(m.headers) : '{}',
    ',"createdAt":"',
    formatCreatedAt(m.createdAtMs),
    m.notBeforeMs === null ? '","notBefore":null,"target":' : `","notBefore":"${iso(m.notBeforeMs)}","target":`,
    m.target === null ? 'null' : JSON.stringify(m.target),
    ',"idempotencyKey":',
    m.idempotencyKey === null ? 'null' : JSON.stringify(m.idempotencyKey),
    ',"attempts":',
    String(m.attempts),
    ',"failures":',
    encodeFailures(m.failures),
    'partition' in m ? `,"partition":${m.partition},"offset":${m.offset},"appendedAt":"${iso(m.appendedAtMs)}"}` : '}',
  ]
  return parts.join('')
}

/** Serializes failures for storage; the inverse of decodeFailures. */
export function failuresToJson(failures: readonly Failure[]): string | null {
  return failures.length === 0 ? null : encodeFailures(failures)
}

/** Reads failures stored by failuresToJson; throws when they are not what it writes (a reader's poison). */
export function decodeFailures(json: string | null): Failure[] {
  if (json === null) return []
  const result = v.safeParse(v.array(FailureInput), parseJsonText(json, 'the stored failures'))
  if (!result.success) throw new InvalidRecordError(`the stored failures: ${describeIssue(result.issues[0])}`)
  return result.output.map(failureOf)
}

/**
 * A record that could not be decoded, as `tail --json` prints it: valid JSON that `produce` refuses
 * (it has no payload), with the stored bytes in base64 and why it could not be read.
 */
export function encodePoisonRecord(r: LogRecord): string {
  const raw = r.payload.encoding === 'base64' ? Buffer.from(r.payload.bytes).toString('base64') : Buffer.from(r.payload.json).toString('base64')
  return JSON.stringify({
    v: ENVELOPE_VERSION,
    id: r.id,
    namespace: r.namespace,
    key: r.key,
    error: r.poison?.error ?? 'cannot be decoded',
    raw,
    rawEncoding: 'base64',
    partition: r.partition,
    offset: r.offset,
    appendedAt: timeInRange(r.appendedAtMs) ? iso(r.appendedAtMs) : null,
  })
}
