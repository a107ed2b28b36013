/**
 * The write path of the HTTP API: a request body (one envelope, a JSON array of them, or NDJSON) made
 * into mutations through the same door as `wal produce` (decodeEnvelopeLine: depth, times, counts,
 * sizes, exact payload text), and the answers it gets.
 *
 * Like a line of `wal produce`, a bad mutation rejects itself only: the others of its batch are written,
 * and the answer (400) names each bad one by index with the message `wal produce` gives for a bad line.
 * A body that is not JSON (or not UTF-8) as a whole is refused whole.
 */
import { isUtf8 } from 'node:buffer'

import { decodeEnvelopeLine, MAX_IDEMPOTENCY_KEY_CHARS, notJsonReason, type Mutation } from '../envelope/envelope.js'
import { invalidUtf8Offset, splitTopLevelArray } from '../envelope/json-text.js'
import type { ResolvedConfig } from '../config/schema.js'
import { DurabilityUnknownError, InvalidRecordError, WalError } from '../errors.js'
import { plural } from '../format.js'
import type { AppendResult } from '../log/backend.js'
import { checkMutation, nextCreatedAtMs } from '../produce/produce.js'
import { TxnBook } from '../txn/book.js'
import { markMarker, newTxnId, TXN_HEADER, TXN_ID_EXPECTED, TXN_ID_PATTERN, txnOf } from '../txn/txn.js'
import { decodeEnvelope, headerMap } from '../envelope/envelope.js'

/** A JSON body with `durable` (Netflix WriteToLog's answer) and a message, plus details. */
export interface ProduceAnswer {
  status: number
  body: {
    durable: true | false | 'unknown'
    message: string
    error?: Record<string, unknown>
    results?: Array<Record<string, unknown>>
  } & Record<string, unknown>
}

/** A body's mutations: the valid ones (with the index each had), and those rejected, by index. */
export type ParsedBody =
  | { ok: true; batch: boolean; count: number; mutations: Mutation[]; indexes: number[]; rejected: Array<{ index: number; line?: number; error: InvalidRecordError }> }
  | { ok: false; answer: ProduceAnswer }

function rejected(message: string, error: WalError, results?: Array<Record<string, unknown>>): ProduceAnswer {
  return { status: 400, body: { durable: false, message, error: error.toJSON(), ...(results ? { results } : {}) } }
}

/** One item of a body: its text (or why it cannot be read) and, for NDJSON, its line number. */
interface BodyItem {
  text: string
  line?: number
  invalid?: string
}

function ndjsonItems(bytes: Buffer): BodyItem[] {
  const items: BodyItem[] = []
  let at = 0
  let line = 0
  while (at <= bytes.length) {
    let nl = bytes.indexOf(0x0a, at)
    if (nl === -1) nl = bytes.length
    line++
    let end = nl
    if (end > at && bytes[end - 1] === 0x0d) end--
    const part = bytes.subarray(at, end)
    at = nl + 1
    if (!isUtf8(part)) {
      const offset = invalidUtf8Offset(part)
      items.push({ text: '', line, invalid: `line ${line} is not valid UTF-8 (byte ${offset + 1} of the line); send bytes as a base64 payload with "payloadEncoding":"base64"` })
      continue
    }
    const text = part.toString('utf8')
    if (text.trim() !== '') items.push({ text, line })
  }
  return items
}

/**
 * Parses and checks a write request's body; nothing is written yet. `idempotencyKey` is the request's
 * `Idempotency-Key` header: a mutation that names no idempotency key of its own takes it (in a batch,
 * suffixed `/INDEX`), so a client that sends the same request again after a timeout — a wal HTTP target
 * retrying, which sends the mutation id there — writes nothing twice.
 */
export function parseProduceBody(body: Buffer | string, contentType: string | undefined, namespace: string, config: ResolvedConfig, nowMs: number, idempotencyKey?: string): ParsedBody {
  if (idempotencyKey !== undefined && (idempotencyKey === '' || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_CHARS - 12)) {
    const bad = new InvalidRecordError(`the Idempotency-Key header is ${idempotencyKey === '' ? 'empty' : `${idempotencyKey.length} characters long`}; it takes 1 to ${MAX_IDEMPOTENCY_KEY_CHARS - 12} characters; nothing was written`, { code: 'WAL_RECORD_INVALID' })
    return { ok: false, answer: rejected(bad.message, bad) }
  }
  let bytes = typeof body === 'string' ? Buffer.from(body) : body
  // A byte order mark at the start of the body is ignored, as at the start of `wal produce`'s input.
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3)
  let items: BodyItem[]
  let batch: boolean
  if (contentType?.startsWith('application/x-ndjson')) {
    items = ndjsonItems(bytes)
    batch = true
  } else {
    if (!isUtf8(bytes)) {
      const bad = new InvalidRecordError(`the body is not valid UTF-8 (byte ${invalidUtf8Offset(bytes) + 1}); send bytes as a base64 payload with "payloadEncoding":"base64"`, { code: 'WAL_RECORD_MALFORMED' })
      return { ok: false, answer: rejected(`${bad.message}; nothing was written`, bad) }
    }
    const text = bytes.toString('utf8')
    try {
      // V8's JSON.parse does not recurse, so any depth is safe here; each item's depth is checked below.
      JSON.parse(text)
    } catch (error) {
      const bad = new InvalidRecordError(`the body is not JSON: ${notJsonReason(text, error)}`, {
        code: 'WAL_RECORD_MALFORMED',
        suggestions: ['send one envelope as a JSON object, several as a JSON array, or NDJSON with Content-Type: application/x-ndjson'],
      })
      return { ok: false, answer: rejected(bad.message, bad) }
    }
    const elements = splitTopLevelArray(text, Infinity)
    batch = elements !== undefined
    items = (elements ?? [text]).map((t) => ({ text: t }))
  }
  if (items.length === 0) {
    const empty = new InvalidRecordError('the batch is empty', { suggestions: ['send at least one envelope, e.g. {"key":"user-42","payload":{…}}'] })
    return { ok: false, answer: rejected(empty.message, empty) }
  }
  // createdAt strictly increasing across requests, as `wal produce` stamps it (write-time order).
  const defaults = { namespace, forceNamespace: true, nowMs, createdAtMs: nextCreatedAtMs, fromUser: true }
  const mutations: Mutation[] = []
  const indexes: number[] = []
  const bad: Array<{ index: number; line?: number; error: InvalidRecordError }> = []
  items.forEach((item, index) => {
    try {
      if (item.invalid !== undefined) throw new InvalidRecordError(item.invalid, { code: 'WAL_RECORD_MALFORMED' })
      const mutation = decodeEnvelopeLine(item.text, defaults)
      if (idempotencyKey !== undefined && mutation.idempotencyKey === null && txnOf(mutation) === undefined) {
        mutation.idempotencyKey = batch ? `${idempotencyKey}/${index}` : idempotencyKey
      }
      checkMutation(config, mutation)
      mutations.push(mutation)
      indexes.push(index)
    } catch (error) {
      if (!(error instanceof InvalidRecordError)) throw error
      bad.push({ index, ...(item.line === undefined ? {} : { line: item.line }), error })
    }
  })
  if (!batch && bad.length > 0) return { ok: false, answer: rejected(bad[0]!.error.message, bad[0]!.error) }
  return { ok: true, batch, count: items.length, mutations, indexes, rejected: bad }
}

/**
 * The answer for a body once its valid mutations were appended (`results`, one per valid mutation):
 * 200 when all are durable, else each mutation's outcome by index (see partialAnswer).
 */
export function produceAnswer(parsed: Extract<ParsedBody, { ok: true }>, results: readonly AppendResult[], namespace: string): ProduceAnswer {
  if (parsed.rejected.length === 0 && results.every((r) => r.error === undefined)) return durableAnswer(results, namespace, parsed.batch)
  const byIndex: AppendResult[] = new Array(parsed.count)
  const mutations: Array<Mutation | undefined> = new Array(parsed.count)
  results.forEach((r, i) => {
    byIndex[parsed.indexes[i]!] = r
    mutations[parsed.indexes[i]!] = parsed.mutations[i]
  })
  for (const r of parsed.rejected) byIndex[r.index] = { id: '', partition: -1, offset: -1, duplicate: false, error: r.error }
  return partialAnswer(byIndex, mutations, namespace, parsed.batch, new Map(parsed.rejected.filter((r) => r.line !== undefined).map((r) => [r.index, r.line!])))
}

function ack(result: AppendResult, namespace: string): Record<string, unknown> {
  // SQS has no offsets: the queue and the MessageId say where the message is (as `wal produce` prints).
  if (result.messageId !== undefined) return { id: result.id, namespace, partition: result.partition, queue: result.queue, messageId: result.messageId, durable: true }
  return { id: result.id, namespace, partition: result.partition, offset: result.offset, durable: true, ...(result.duplicate ? { duplicate: true } : {}) }
}

/** The answer once the log said every mutation is durable. */
export function durableAnswer(results: readonly AppendResult[], namespace: string, batch: boolean): ProduceAnswer {
  if (!batch) {
    const r = results[0]!
    return { status: 200, body: { ...ack(r, namespace), durable: true, message: r.duplicate ? 'duplicate: an earlier mutation with this idempotency key is durable' : 'durable' } }
  }
  const duplicates = results.filter((r) => r.duplicate).length
  return {
    status: 200,
    body: {
      durable: true,
      message: `${results.length} mutation${results.length === 1 ? '' : 's'} durable${duplicates > 0 ? ` (${duplicates} duplicate${duplicates === 1 ? '' : 's'})` : ''}`,
      results: results.map((r, index) => ({ index, ...ack(r, namespace) })),
    },
  }
}

/**
 * The answer when some mutations of a request were not written (rejected by the door or refused by
 * the backend) or, on a backend that writes entries one by one (SQS), failed: each mutation's outcome
 * by index (acked, refused, not written, or unknown), and the status of the worst —
 * 504 when some may or may not be in the log, 503 when some were not written (try them again), 400
 * when some were refused as they are. The acked ones are durable either way.
 */
export function partialAnswer(
  results: readonly AppendResult[],
  mutations: ReadonlyArray<Mutation | undefined>,
  namespace: string,
  batch: boolean,
  lines: ReadonlyMap<number, number> = new Map(),
): ProduceAnswer {
  const outcomes = results.map((r, index) => {
    const m = mutations[index]
    if (r.error === undefined) return { index, ...ack(r, namespace) }
    // Rejected before it was written (by the door): no id was given to it.
    if (m === undefined) return { index, ...(lines.has(index) ? { line: lines.get(index) } : {}), namespace, durable: false, error: r.error.toJSON() }
    if (r.error instanceof DurabilityUnknownError) return { index, id: m.id, namespace, durable: 'unknown' as const, idempotencyKey: m.idempotencyKey, error: r.error.toJSON() }
    return { index, id: m.id, namespace, durable: false, error: r.error.toJSON() }
  })
  const failed = results.filter((r) => r.error !== undefined)
  const status = failed.some((r) => r.error instanceof DurabilityUnknownError) ? 504 : failed.some((r) => !(r.error instanceof InvalidRecordError)) ? 503 : 400
  const durable = status === 504 ? ('unknown' as const) : false
  const first = failed[0]!.error!
  if (!batch) {
    const { index: _index, ...outcome } = outcomes[0]!
    const message = status === 504 ? `${first.message}: the write may or may not be in the log; send it again with the same idempotency key` : first.message
    return { status, body: { ...outcome, durable, message } }
  }
  const advice = status === 504 ? 'send those again with the same idempotency keys' : status === 503 ? 'send those again' : 'fix those and send them again'
  const acked = results.length - failed.length
  return {
    status,
    body: {
      durable,
      message: `${acked} of ${results.length} mutations durable; ${failed.length} not (first: index ${results.indexOf(failed[0]!)}: ${first.message}): ${advice}`,
      results: outcomes,
    },
  }
}

/** A request whose parts are refused: nothing of it is written. */
function refusedParts(bad: Array<{ index: number; line?: number; error: InvalidRecordError }>): ParsedTransaction {
  bad.sort((a, b) => a.index - b.index)
  const first = bad[0]!
  return {
    ok: false,
    answer: rejected(`part ${first.index}${first.line === undefined ? '' : ` (line ${first.line})`}: ${first.error.message}; nothing of the transaction was written`, first.error, bad.map((b) => ({ index: b.index, ...(b.line === undefined ? {} : { line: b.line }), durable: false, error: b.error.toJSON() }))),
  }
}

/**
 * `POST /v1/namespaces/{ns}/transactions/{txn}/commit[?parts=N]`: the marker of a transaction whose parts
 * were added by earlier requests; with `parts`, it is refused unless the log holds exactly that many.
 */
export function transactionMarker(namespace: string, txnId: string, parts: string | null, nowMs: number): ParsedTransaction {
  const bad = !TXN_ID_PATTERN.test(txnId)
    ? new InvalidRecordError(`the transaction id in the path is not ${TXN_ID_EXPECTED}`, { code: 'WAL_TXN_REFUSED' })
    : parts !== null && !/^[1-9]\d{0,8}$/.test(parts)
      ? new InvalidRecordError(`?parts=${JSON.stringify(parts.slice(0, 20)).slice(1, -1)} is not a count of parts (1 or more)`, { code: 'WAL_TXN_REFUSED' })
      : undefined
  if (bad !== undefined) return { ok: false, answer: rejected(`${bad.message}; nothing was written`, bad) }
  const marker = decodeEnvelope({ txn: txnId, commit: true }, { namespace, forceNamespace: true, nowMs, createdAtMs: nextCreatedAtMs })
  if (parts !== null) markMarker(marker, txnId, Number(parts))
  return { ok: true, txn: txnId, mutations: [marker] }
}

/** The answer for parts added to an open transaction: each part's ack, by index. */
export function transactionPartsAnswer(txn: string, mutations: readonly Mutation[], results: readonly AppendResult[], namespace: string): ProduceAnswer {
  const failed = results.findIndex((r) => r.error !== undefined)
  if (failed === -1) return { status: 200, body: { durable: true, message: `${plural(results.length, 'part', 'parts')} of transaction ${txn} durable; it is applied once committed`, txn, results: results.map((r, index) => ({ index, ...ack(r, namespace) })) } }
  return partialAnswer(results, mutations, namespace, true)
}

/** A transaction request's parts and marker, ready to append in one go (the marker last). */
export type ParsedTransaction = { ok: true; txn: string; mutations: Mutation[] } | { ok: false; answer: ProduceAnswer }

/**
 * `POST /v1/namespaces/{ns}/transactions`: the body's envelopes (as for /mutations) are the parts of one
 * transaction, in order, closed by a marker. All or nothing: one bad part refuses the request whole.
 * The id is `?txn=ID`, or a new one.
 */
export function parseTransactionBody(
  body: Buffer | string,
  contentType: string | undefined,
  namespace: string,
  config: ResolvedConfig,
  nowMs: number,
  txnId: string | null,
  step: 'whole' | 'parts' = 'whole',
): ParsedTransaction {
  if (txnId !== null && !TXN_ID_PATTERN.test(txnId)) {
    const bad = new InvalidRecordError(`?txn=${JSON.stringify(txnId).slice(1, -1).slice(0, 140)} is not ${TXN_ID_EXPECTED}`, { code: 'WAL_TXN_REFUSED' })
    return { ok: false, answer: rejected(`${bad.message}; nothing was written`, bad) }
  }
  const parsed = parseProduceBody(body, contentType, namespace, config, nowMs)
  if (!parsed.ok) return parsed
  const txn = txnId ?? newTxnId(nowMs)
  if (step === 'parts') {
    // Parts added to an open transaction, one request at a time: the log numbers them as they come.
    const bad = [...parsed.rejected]
    parsed.mutations.forEach((m, i) => {
      const why = txnOf(m) !== undefined ? 'the parts of a transaction cannot name a transaction of their own ("txn")' : m.notBeforeMs !== null ? 'a part is applied when its transaction\'s marker is read, so it cannot be delayed (notBefore)' : undefined
      if (why !== undefined) bad.push({ index: parsed.indexes[i]!, error: new InvalidRecordError(why, { code: 'WAL_TXN_REFUSED' }) })
      else m.headers = headerMap({ ...m.headers, [TXN_HEADER]: txn })
    })
    if (bad.length > 0) return refusedParts(bad)
    return { ok: true, txn, mutations: parsed.mutations }
  }
  const book = new TxnBook<number>(txn)
  const bad = [...parsed.rejected]
  parsed.mutations.forEach((m, i) => {
    try {
      book.admit(m, parsed.indexes[i]!)
    } catch (error) {
      if (!(error instanceof InvalidRecordError)) throw error
      bad.push({ index: parsed.indexes[i]!, error })
    }
  })
  if (bad.length > 0) return refusedParts(bad)
  const marker = decodeEnvelope({ txn, commit: true }, { namespace, forceNamespace: true, nowMs, createdAtMs: nextCreatedAtMs })
  book.admitMarker(marker, book.take(txn)!)
  return { ok: true, txn, mutations: [...parsed.mutations, marker] }
}

/** The answer once a transaction's parts and marker were appended: the marker's ack is the transaction's. */
export function transactionAnswer(txn: string, mutations: readonly Mutation[], results: readonly AppendResult[], namespace: string): ProduceAnswer {
  const marker = results.at(-1)!
  const parts = results.slice(0, -1)
  if (parts.length === 0 && marker.error === undefined) {
    return { status: 200, body: { durable: true, message: `transaction ${txn} committed`, txn, marker: ack(marker, namespace) } }
  }
  const failedPart = parts.findIndex((r) => r.error !== undefined)
  if (marker.error === undefined && failedPart === -1) {
    return {
      status: 200,
      body: { durable: true, message: `transaction ${txn} committed: ${plural(parts.length, 'part', 'parts')} durable, then its marker`, txn, parts: parts.length, marker: ack(marker, namespace), results: parts.map((r, index) => ({ index, ...ack(r, namespace) })) },
    }
  }
  const error = marker.error ?? parts[failedPart]!.error!
  const unknown = results.some((r) => r.error instanceof DurabilityUnknownError)
  return {
    status: unknown ? 504 : error instanceof InvalidRecordError ? 400 : 503,
    body: {
      durable: unknown ? 'unknown' : false,
      message: `transaction ${txn} is not committed${failedPart === -1 ? '' : ` (part ${failedPart}: ${parts[failedPart]!.error!.message})`}: ${error.message}; none of it is applied`,
      txn,
      error: error.toJSON(),
      results: parts.map((r, index) => (r.error === undefined ? { index, ...ack(r, namespace) } : { index, id: mutations[index]!.id, durable: false, error: r.error.toJSON() })),
    },
  }
}
