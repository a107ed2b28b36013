/**
 * Targets: where consumers apply mutations (an embedded key-value store, an HTTP endpoint, an NDJSON
 * file, a Kafka topic, Cassandra tables). Every target classifies its own failures, so the pipeline's
 * retry, circuit-breaker and DLQ logic never looks at a library's error.
 */
import type { ErrorClass, Mutation } from '../envelope/envelope.js'
import { REPLAYS_HEADER } from '../dlq/replays.js'
import { redactText } from '../config/redact.js'

/** A failed apply, classified by the target that saw it. */
export class TargetError extends Error {
  readonly errorClass: ErrorClass
  /** A short stable code for grouping (`HTTP_503`, `ECONNREFUSED`, `NOT_AN_OPERATION`, …). */
  readonly code: string

  constructor(message: string, options: { errorClass: ErrorClass; code: string; cause?: unknown }) {
    // Redacted here, once for every target: the message goes to the DLQ, explain, logs and terminals.
    super(redactText(message), options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TargetError'
    this.errorClass = options.errorClass
    this.code = options.code
  }
}

/** What a target gets with each apply. */
export interface ApplyContext {
  /** 1 for the first try. */
  attempt: number
  /** Aborted when the consumer stops without waiting (second Ctrl-C) or the apply times out. */
  signal: AbortSignal
}

/** What a target gets with a batch of applies (each mutation's attempt is its `attempts` + 1). */
export type BatchContext = Omit<ApplyContext, 'attempt'>

export interface Target {
  /** The target's name in the namespace's config. */
  readonly name: string
  /**
   * Applies one mutation. Resolves when the effect is durable in the target; throws TargetError (any
   * other error counts as retryable). Must be idempotent: the same mutation may be applied again after
   * a crash or a replay, and an older mutation (by createdAt) must never overwrite a newer one.
   */
  apply(mutation: Mutation, context: ApplyContext): Promise<void>
  /**
   * Applies several mutations in the order given, all or none: when it throws, none of them took
   * effect, and the consumer applies them again one at a time (so one bad mutation fails alone, with
   * its own retries). Each is at its first attempt unless its `attempts` say otherwise. Optional: a
   * target that holds applies until flush() (kv, file) takes a page of ready mutations in one call.
   */
  applyBatch?(mutations: readonly Mutation[], context: BatchContext): Promise<void>
  /**
   * When a delayed mutation should be applied, if the target spreads it (Cassandra's deleteJitterMs);
   * the mutation's notBefore otherwise. Must give the same answer for the same mutation every time.
   */
  deliveryTimeMs?(mutation: Mutation): number | null
  /** Makes everything applied so far durable, before the consumer commits its offsets. */
  flush?(): Promise<void>
  close(): Promise<void>
}


/**
 * What a forwarding target (a Kafka topic, an SQS queue) writes: the mutation as a new entry of the next
 * hop's log. Its routing (`target`), delivery time, attempts, failures and replay count were about this
 * hop — the target it was addressed to is this one, its delay was waited out here, its replays were this
 * DLQ's — so none of them travel: the next hop's namespace routes, retries and guards it afresh. Key,
 * payload, headers, createdAt, id and idempotency key are kept.
 */
export function forwardedCopy(mutation: Mutation): Mutation {
  const headers: Record<string, string> = Object.create(null) as Record<string, string>
  for (const name in mutation.headers) if (name !== REPLAYS_HEADER) headers[name] = mutation.headers[name]!
  return { ...mutation, headers, target: null, notBeforeMs: null, attempts: 0, failures: [] }
}

/** Converts anything an apply threw into a TargetError (unknown errors are retryable). */
export function toTargetError(error: unknown): TargetError {
  if (error instanceof TargetError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new TargetError(message, { errorClass: 'retryable', code: 'UNEXPECTED', cause: error })
}
