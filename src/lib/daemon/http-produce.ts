/**
 * The write path of the HTTP API: a request body (one envelope, a JSON array of them, or NDJSON) made
 * into mutations with the same decoding and checks as `wal produce`, and the answers it gets.
 *
 * A batch is all or nothing: when any mutation in it is invalid, nothing is written and the answer
 * names each bad one (by index) with the message `wal produce` gives for a bad line.
 */
import { decodeEnvelope, type Mutation } from '../envelope/envelope.js'
import type { ResolvedConfig } from '../config/schema.js'
import { DurabilityUnknownError, InvalidRecordError, WalError } from '../errors.js'
import type { AppendResult } from '../log/backend.js'
import { checkMutation, nextCreatedAtMs } from '../produce/produce.js'

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

export type ParsedBody = { ok: true; batch: boolean; mutations: Mutation[] } | { ok: false; answer: ProduceAnswer }

function rejected(message: string, error: WalError, results?: Array<Record<string, unknown>>): ProduceAnswer {
  return { status: 400, body: { durable: false, message, error: error.toJSON(), ...(results ? { results } : {}) } }
}

/** Parses and checks a write request's body; nothing is written yet. */
export function parseProduceBody(text: string, contentType: string | undefined, namespace: string, config: ResolvedConfig, nowMs: number): ParsedBody {
  let items: unknown[]
  let batch: boolean
  if (contentType?.startsWith('application/x-ndjson')) {
    items = []
    const lines = text.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim()
      if (line === '') continue
      try {
        items.push(JSON.parse(line))
      } catch (error) {
        const bad = new InvalidRecordError(`line ${i + 1} is not JSON: ${(error as Error).message}`, { code: 'WAL_RECORD_MALFORMED' })
        return { ok: false, answer: rejected(`line ${i + 1} is not JSON; nothing was written`, bad) }
      }
    }
    batch = true
  } else {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (error) {
      const bad = new InvalidRecordError(`the body is not JSON: ${(error as Error).message}`, {
        code: 'WAL_RECORD_MALFORMED',
        suggestions: ['send one envelope as a JSON object, several as a JSON array, or NDJSON with Content-Type: application/x-ndjson'],
      })
      return { ok: false, answer: rejected(bad.message, bad) }
    }
    batch = Array.isArray(parsed)
    items = batch ? (parsed as unknown[]) : [parsed]
  }
  if (items.length === 0) {
    const empty = new InvalidRecordError('the batch is empty', { suggestions: ['send at least one envelope, e.g. {"key":"user-42","payload":{…}}'] })
    return { ok: false, answer: rejected(empty.message, empty) }
  }
  // createdAt strictly increasing across requests, as `wal produce` stamps it (write-time order).
  const defaults = { namespace, forceNamespace: true, nowMs, createdAtMs: nextCreatedAtMs }
  const mutations: Mutation[] = []
  const errors: Array<Record<string, unknown>> = []
  items.forEach((item, index) => {
    try {
      const mutation = decodeEnvelope(item, defaults)
      checkMutation(config, mutation)
      mutations.push(mutation)
    } catch (error) {
      if (!(error instanceof InvalidRecordError)) throw error
      errors.push({ index, durable: false, error: error.toJSON() })
    }
  })
  if (errors.length > 0) {
    const first = errors[0]!.error as { message: string; code: string }
    const error = new InvalidRecordError(first.message, { code: first.code })
    const message = batch
      ? `${errors.length} of ${items.length} mutations are invalid (first: index ${errors[0]!.index as number}: ${first.message}); nothing was written`
      : first.message
    return { ok: false, answer: rejected(message, error, batch ? errors : undefined) }
  }
  return { ok: true, batch, mutations }
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
 * The answer when a backend that writes entries one by one (SQS) failed on some and not others: each
 * mutation's outcome by index (acked, refused, not written, or unknown), and the status of the worst —
 * 504 when some may or may not be in the log, 503 when some were not written (try them again), 400
 * when some were refused as they are. The acked ones are durable either way.
 */
export function partialAnswer(results: readonly AppendResult[], mutations: readonly Mutation[], namespace: string, batch: boolean): ProduceAnswer {
  const outcomes = results.map((r, index) => {
    const m = mutations[index]!
    if (r.error === undefined) return { index, ...ack(r, namespace) }
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
