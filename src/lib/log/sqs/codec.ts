/**
 * Mutations as SQS messages. The body is the mutation's envelope (the same JSON line `wal tail --json`
 * prints), so any SQS client can read it; a few message attributes say what wal needs without parsing
 * the body (`wal-envelope`, `wal-id`) and, in the DLQ, why the message is there (`wal-dlq-*`).
 *
 * A message that is wal's (by attribute or by its shape) whose body cannot be decoded is quarantined
 * (LogRecord.poison).
 * Messages another client sent are wrapped in an envelope on read, never rejected: a stable id derived
 * from the MessageId, the FIFO group (or the id) as key, the body as JSON when it parses, else its bytes,
 * the string message attributes as headers, and SentTimestamp as createdAt.
 */
import { createHash } from 'node:crypto'

import type { Message, MessageAttributeValue, SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs'

import { decodeEnvelopeLine, encodeEnvelope, headerMap, MAX_FAILURE_MESSAGE_CHARS, type ErrorClass, type LogRecord, type Mutation, type Payload } from '../../envelope/envelope.js'
import { foreignRecordId } from '../../envelope/id.js'
import { checkedJson, poisonRecord } from '../../envelope/quarantine.js'

/** A SendMessageBatch entry without its Id. */
export type OutgoingMessage = Omit<SendMessageBatchRequestEntry, 'Id' | 'MessageBody'> & { MessageBody: string }

/** SQS's limit on a message: body and attributes together. */
export const MAX_MESSAGE_BYTES = 256 * 1024
/** Entries per SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch. */
export const MAX_BATCH_ENTRIES = 10
/** The longest DelaySeconds SQS accepts. */
export const MAX_DELAY_SECONDS = 900
/**
 * The longest wait wal asks of a visibility timeout: SQS refuses more than 12 hours counted from the
 * receive, so a little is left for the time since.
 */
export const MAX_VISIBILITY_SECONDS = 43_200 - 300

export const ATTR = {
  envelope: 'wal-envelope',
  id: 'wal-id',
  dlqTarget: 'wal-dlq-target',
  dlqErrorClass: 'wal-dlq-error-class',
  dlqCode: 'wal-dlq-code',
  dlqMessage: 'wal-dlq-message',
  dlqAt: 'wal-dlq-at',
  dlqShard: 'wal-dlq-shard',
  parked: 'wal-dlq-parked',
} as const

/** Why a message is in the DLQ, as its attributes say. */
export interface DeadLetterContext {
  target: string
  errorClass: ErrorClass
  code: string
  message: string
  atMs: number
  shard: number
  parked?: boolean
  /** Where a replay addresses it, when not `target` (null: every target). */
  replayTarget?: string | null
}

function str(value: string): MessageAttributeValue {
  return { DataType: 'String', StringValue: value }
}

/** Bytes a message takes against the 256 KiB limit (body, attribute names, types and values). */
export function messageBytes(body: string, attributes: Record<string, MessageAttributeValue>): number {
  let n = Buffer.byteLength(body)
  for (const name in attributes) {
    const a = attributes[name]!
    n += Buffer.byteLength(name) + Buffer.byteLength(a.DataType ?? '') + Buffer.byteLength(a.StringValue ?? '')
  }
  return n
}

export interface EncodeOptions {
  fifo: boolean
  /** Seconds to hide the message for (standard queues only: FIFO queues have no per-message delay). */
  delaySeconds?: number
  dead?: DeadLetterContext
  /** FIFO: the deduplication id (default: from the idempotency key, else the mutation id). */
  deduplicationId?: string
  /**
   * FIFO: the message group (default: the key). A DLQ copy gets a group of its own: SQS returns no
   * more of a group while some of it is held hidden, so keyed dead letters beyond one receive (10)
   * would stay out of a DLQ snapshot (`dlq ls/export/replay/purge`).
   */
  groupId?: string
}

/** A SendMessageBatch entry (without its Id) for a mutation. */
export function encodeMessage(mutation: Mutation, options: EncodeOptions): OutgoingMessage {
  const attributes: Record<string, MessageAttributeValue> = { [ATTR.envelope]: str('1'), [ATTR.id]: str(mutation.id) }
  const dead = options.dead
  if (dead) {
    attributes[ATTR.dlqTarget] = str(dead.target)
    attributes[ATTR.dlqErrorClass] = str(dead.errorClass)
    attributes[ATTR.dlqCode] = str(dead.code || 'UNKNOWN')
    attributes[ATTR.dlqMessage] = str((dead.message || '(no message)').slice(0, MAX_FAILURE_MESSAGE_CHARS))
    attributes[ATTR.dlqAt] = str(new Date(dead.atMs).toISOString())
    attributes[ATTR.dlqShard] = { DataType: 'Number', StringValue: String(dead.shard) }
    if (dead.parked) attributes[ATTR.parked] = str('true')
  }
  const body = encodeEnvelope(mutation)
  addHeaderAttributes(attributes, mutation.headers, body)
  return {
    MessageBody: body,
    MessageAttributes: attributes,
    ...(options.fifo
      ? {
          MessageGroupId: groupId(options.groupId ?? mutation.key),
          // SQS drops a repeat of this id within 5 minutes: re-producing after an unknown outcome is safe.
          MessageDeduplicationId: dedupId(options.deduplicationId ?? mutation.idempotencyKey ?? mutation.id),
        }
      : options.delaySeconds
        ? { DelaySeconds: Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil(options.delaySeconds))) }
        : {}),
  }
}

/** SQS takes at most this many message attributes per message. */
export const MAX_MESSAGE_ATTRIBUTES = 10

/** A name SQS takes for a message attribute (and that is not one of wal's own). */
function attributeName(name: string): boolean {
  return (
    /^[A-Za-z0-9_.-]{1,256}$/.test(name) &&
    !/^(aws\.|amazon\.|wal-)/i.test(name) &&
    !name.startsWith('.') &&
    !name.endsWith('.') &&
    !name.includes('..')
  )
}

const ATTRIBUTE_VALUE = /^(?:[\t\n\r\u0020-\uD7FF\uE000-\uFFFD]|[\uD800-\uDBFF][\uDC00-\uDFFF])+$/

/** A value SQS takes in a String attribute: not empty, and only the characters it allows. */
function attributeValue(value: string): boolean {
  return ATTRIBUTE_VALUE.test(value)
}

/**
 * The user's headers as message attributes too, so that consumers that read attributes (SNS filter
 * policies, Lambda event filters, other SQS clients) see them: in the order given, as many as fit in
 * SQS's 10 attributes beside wal's own and within the message size limit. Names or values SQS does not
 * take as attributes are skipped. Every header stays in the body's envelope, which is what wal reads.
 */
function addHeaderAttributes(attributes: Record<string, MessageAttributeValue>, headers: Record<string, string>, body: string): void {
  let bytes = messageBytes(body, attributes)
  for (const name in headers) {
    if (Object.keys(attributes).length >= MAX_MESSAGE_ATTRIBUTES) return
    const value = headers[name]!
    if (!attributeName(name) || !attributeValue(value)) continue
    const added = Buffer.byteLength(name) + Buffer.byteLength('String') + Buffer.byteLength(value)
    if (bytes + added > MAX_MESSAGE_BYTES) continue
    attributes[name] = str(value)
    bytes += added
  }
}

/**
 * FIFO group ids and dedup ids: at most 128 characters of [A-Za-z0-9] and punctuation. A key or
 * idempotency key that is long, not printable ASCII, or could be mistaken for a hashed one is sent as
 * the SHA-256 of its text: two distinct dedup ids must never meet, or SQS drops one of two mutations as a
 * duplicate after both were acked.
 */
function fifoId(text: string): string {
  if (text.length <= 128 && !text.startsWith('h-') && PRINTABLE_ASCII.test(text)) return text
  return `h-${createHash('sha256').update(text, 'utf8').digest('base64url')}`
}

const PRINTABLE_ASCII = /^[\x21-\x7e]*$/

export const groupId = fifoId
export const dedupId = fifoId

function attr(message: Message, name: string): string | undefined {
  return message.MessageAttributes?.[name]?.StringValue
}

function foreignPayload(body: string): Payload {
  try {
    return { encoding: 'json', json: checkedJson(body) }
  } catch {
    return { encoding: 'base64', bytes: Buffer.from(body, 'utf8') }
  }
}

/** Where a message was read from, for the record's position. */
export interface MessageSource {
  queue: string
  shard: number
  namespace: string
}

/** A body that is a wal envelope by its shape (`v`, `id` and `payload`), sent without wal's attributes. */
function looksLikeEnvelope(body: string): boolean {
  try {
    const parsed = JSON.parse(body) as unknown
    return typeof parsed === 'object' && parsed !== null && 'id' in parsed && 'payload' in parsed
  } catch {
    return false
  }
}

/**
 * A received message as a log record (partition: the shard; offset: none on SQS, so 0). A message that
 * is wal's envelope (by the `wal-envelope` attribute, or by its shape: `{"v":1,` with an id and a
 * payload) but cannot be decoded as one comes back as poison (LogRecord.poison), never as something a
 * target could apply.
 */
export function decodeMessage(message: Message, source: MessageSource): LogRecord {
  const sentMs = Number(message.Attributes?.SentTimestamp ?? Date.now())
  const body = message.Body ?? ''
  let mutation: Mutation | undefined
  const marked = attr(message, ATTR.envelope) === '1'
  if (marked || body.startsWith('{"v":1,')) {
    try {
      mutation = decodeEnvelopeLine(body, { namespace: source.namespace, forceNamespace: true, nowMs: sentMs })
    } catch (error) {
      if (marked || looksLikeEnvelope(body)) {
        return poisonRecord({
          id: attr(message, ATTR.id),
          namespace: source.namespace,
          partition: source.shard,
          offset: 0,
          appendedAtMs: Number.isSafeInteger(sentMs) ? sentMs : 0,
          location: source.queue,
          raw: Buffer.from(body, 'utf8'),
          error: `cannot decode message ${message.MessageId ?? '?'} of queue ${source.queue} as a wal envelope: ${(error as Error).message}`,
        })
      }
      // Not an envelope after all (another application's JSON that happens to start alike): wrapped below.
    }
  }
  if (!mutation) {
    const id = foreignRecordId(source.queue, source.shard, message.MessageId ?? body, sentMs)
    const headers = headerMap()
    for (const name of Object.keys(message.MessageAttributes ?? {})) {
      const value = message.MessageAttributes![name]!
      if (value.StringValue !== undefined && !name.startsWith('wal-')) headers[name] = value.StringValue
    }
    mutation = {
      id,
      namespace: source.namespace,
      key: message.Attributes?.MessageGroupId ?? id,
      payload: foreignPayload(body),
      headers,
      createdAtMs: sentMs,
      notBeforeMs: null,
      target: null,
      idempotencyKey: null,
      attempts: 0,
      failures: [],
    }
  }
  return { ...mutation, partition: source.shard, offset: 0, appendedAtMs: sentMs }
}

/** Why a DLQ message is there: wal's attributes, or SQS's redrive when it moved the message itself. */
export function deadLetterContext(message: Message, record: LogRecord, maxReceiveCount: number | null): DeadLetterContext {
  const errorClass = attr(message, ATTR.dlqErrorClass)
  if (errorClass === 'retryable' || errorClass === 'fatal' || errorClass === 'infrastructure' || errorClass === 'poison' || errorClass === 'txn-aborted') {
    return {
      target: attr(message, ATTR.dlqTarget) ?? '(unknown)',
      errorClass,
      code: attr(message, ATTR.dlqCode) ?? 'UNKNOWN',
      message: attr(message, ATTR.dlqMessage) ?? '',
      atMs: Date.parse(attr(message, ATTR.dlqAt) ?? '') || record.appendedAtMs,
      shard: Number(attr(message, ATTR.dlqShard) ?? record.partition) || 0,
      parked: attr(message, ATTR.parked) === 'true',
    }
  }
  // Moved by the queue's redrive policy: the consumer never finished it (it crashed, or it was peeked
  // and received too often). The last failure recorded in the envelope, if any, says more. Which targets
  // applied it is not known, so a replay sends it back as it was addressed.
  const last = record.failures.at(-1)
  return {
    target: record.target ?? '(any)',
    replayTarget: record.target,
    errorClass: 'infrastructure',
    code: 'SQS_MAX_RECEIVES',
    message: `moved to the DLQ by SQS after ${message.Attributes?.ApproximateReceiveCount ?? '?'} receives${maxReceiveCount === null ? '' : ` (maxReceiveCount ${maxReceiveCount})`}${last ? `; last failure: ${last.message}` : ''}`,
    atMs: record.appendedAtMs,
    shard: record.partition,
  }
}
