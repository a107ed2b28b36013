/**
 * Quarantine on read: what every log reader (embedded rows, Kafka records, SQS messages) uses to check
 * a stored record before anyone acts on it, and the stand-in record for one that fails. However a
 * record got into a log (an older wal, a foreign writer, a damaged byte), a reader never stops on it:
 * consumers dead-letter it as class `poison`, tail prints it marked, targets never see it.
 */
import { isWellFormed, POISON_CODE, type LogRecord } from './envelope.js'
import { foreignRecordId, ULID_PATTERN } from './id.js'
import { isJsonWithin, jsonDepth, MAX_PAYLOAD_DEPTH } from './json-text.js'

export { POISON_CODE }

/** Stored JSON payload text, returned as it is once known to be JSON within the depth limit; throws otherwise. */
export function checkedJson(text: string): string {
  // The common case in one pass that builds nothing; anything else is looked at again to say why.
  if (isJsonWithin(text, MAX_PAYLOAD_DEPTH)) return text
  if (jsonDepth(text, MAX_PAYLOAD_DEPTH) > MAX_PAYLOAD_DEPTH) throw new Error(`the payload is nested more than ${MAX_PAYLOAD_DEPTH} levels deep`)
  try {
    JSON.parse(text)
  } catch (error) {
    throw new Error(`the payload is not JSON: ${(error as Error).message.slice(0, 200)}`)
  }
  return text
}

/** Stored headers (a JSON object of strings) in an object without a prototype; throws when they are not that. */
export function storedHeaders(json: string): Record<string, string> {
  if (jsonDepth(json, 2) > 1) throw new Error('the stored headers are not an object of strings')
  const parsed = JSON.parse(json) as unknown
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('the stored headers are not an object')
  const headers = Object.create(null) as Record<string, string>
  for (const name of Object.keys(parsed)) {
    const value = (parsed as Record<string, unknown>)[name]
    if (typeof value !== 'string') throw new Error(`the stored header ${JSON.stringify(name)} is not a string`)
    headers[name] = value
  }
  return headers
}

export interface PoisonSource {
  /** The id and key the record says it has, when they can be read. */
  id?: string
  key?: string
  namespace: string
  partition: number
  offset: number
  appendedAtMs: number
  /** Where it was read from, for a stable stand-in id (a topic, a queue, a log file). */
  location?: string
  /** The stored bytes, as they are. */
  raw: Uint8Array
  error: string
}

/**
 * The stand-in for a record that cannot be decoded: its id and key when they are readable (else ones
 * derived from its position), its stored bytes as a base64 payload, and why (LogRecord.poison).
 */
export function poisonRecord(source: PoisonSource): LogRecord {
  const position = `${source.partition}:${source.offset}`
  const id = source.id !== undefined && ULID_PATTERN.test(source.id) ? source.id : foreignRecordId(source.location ?? source.namespace, source.partition, String(source.offset), source.appendedAtMs)
  const key = source.key !== undefined && source.key.length > 0 && source.key.length <= 1024 && isWellFormed(source.key) ? source.key : `poison/${position}`
  return {
    id,
    namespace: source.namespace,
    key,
    payload: { encoding: 'base64', bytes: source.raw },
    headers: Object.create(null) as Record<string, string>,
    createdAtMs: source.appendedAtMs,
    notBeforeMs: null,
    target: null,
    idempotencyKey: null,
    attempts: 0,
    failures: [],
    partition: source.partition,
    offset: source.offset,
    appendedAtMs: source.appendedAtMs,
    poison: { error: source.error },
  }
}
