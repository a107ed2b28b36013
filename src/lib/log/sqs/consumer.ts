/**
 * The consumer pipeline on SQS queues: receive → delay gate → apply → retry/backoff → DLQ → delete.
 * SQS has no offsets to commit, so this is message-based rather than the offset pipeline of the other
 * backends, with the same rules:
 *
 * - Long polling on each shard queue; a received message stays hidden (every message in hand has its
 *   visibility extended every third of the visibility timeout, within SQS's 12 hours from its receive)
 *   until it is finished, and is deleted only once every target it is for has applied it (or
 *   dead-lettered it).
 * - Retries on standard queues: the message is not deleted but hidden for the backoff
 *   (ChangeMessageVisibility), so SQS delivers it again then; the attempt number is its receive count.
 * - Retries on FIFO queues: the message stays in hand, and so do the later ones of its key received with
 *   it (SQS hands out no more of the group meanwhile); it is tried again here after the backoff, and
 *   nothing goes back to the queue, so SQS counts no receive: a key's later messages are not moved to
 *   the DLQ by the redrive (maxReceiveCount) while an earlier one retries. The attempt number is its
 *   receive count plus the tries made in hand (less the receives that only put it back behind an earlier
 *   message of its key); after a crash, the receive count alone. A retry due more than 11 hours after
 *   the receive (the visibility cap), or past MAX_HELD_MESSAGES, goes back to the queue for its backoff
 *   instead, and its key's later ones behind it. A stop puts held messages back at once (once polling
 *   ended), without an attempt.
 * - At the policy's maxAttempts, or on a
 *   fatal error, wal sends it to the DLQ itself with why (`wal-dlq-*` attributes, the failure history in
 *   the envelope) and deletes it. The queue's redrive policy (maxReceiveCount, above maxAttempts) is the
 *   net for what wal never finished: a consumer that kept crashing, a message peeked too often.
 * - Infrastructure errors pause the target (circuit breaker) without spending attempts: the message is
 *   kept hidden, and no more is received until the target answers.
 * - Delays: a message not due yet is re-sent with the rest of its delay (at most maxNativeDelaySeconds
 *   at a time) and the original deleted, on standard queues; on FIFO queues, which have no per-message
 *   delay, it is hidden until due, which also holds back the later messages of its key (group).
 * - Per-key order: on FIFO queues SQS delivers a group in order and holds it while one is hidden; here
 *   a key's messages are applied one at a time (a held retry keeps its place at the head of its key,
 *   without keeping a concurrency slot), and once one of a key goes back to the queue (a delay, a stop,
 *   a retry past the hold limit), the later ones of that key received with it are put back rather than
 *   applied ahead of it — also those whose turn comes only after its wait is over, since it is back in
 *   the queue, not applied (SQS hands the key out again in order).
 * - Several targets: a message is deleted once each target applied it or dead-lettered it; a target that
 *   succeeded is not applied again while another retries in this process (after a restart it may be,
 *   and applies are idempotent).
 */
import type { Message } from '@aws-sdk/client-sqs'
import { setTimeout as sleep } from 'node:timers/promises'

import type { TargetSettings } from '../../config/schema.js'
import { cutText, MAX_FAILURE_MESSAGE_CHARS, MAX_FAILURES, POISON_CODE, type Failure, type LogRecord, type Mutation } from '../../envelope/envelope.js'
import { BackendUnavailableError, DurabilityUnknownError, type WalError } from '../../errors.js'
import { CircuitBreaker } from '../../pipeline/circuit-breaker.js'
import { KeyedExecutor } from '../../pipeline/keyed-executor.js'
import type { RateLimiter } from '../../pipeline/rate-limiter.js'
import { backoffMs } from '../../pipeline/retry.js'
import { TargetStalledError, type PipelineEvent, type TargetObserver, type TargetStats } from '../../pipeline/target-consumer.js'
import { TargetError, toTargetError, type Target } from '../../targets/target.js'
import { decodeEnvelopeLine } from '../../envelope/envelope.js'
import { abortedTxnEntry, TXN_ABORTED_CLASS, TXN_ABORTED_CODE, txnOf } from '../../txn/txn.js'
import { MAX_BATCH_ENTRIES, MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS } from './codec.js'
import type { ShardQueue, SqsLog } from './sqs-log.js'
import { STORE_KEEP_MS } from './state-store.js'

export interface SqsConsumerTarget {
  settings: TargetSettings
  target: Target
  limiters: readonly RateLimiter[]
  /** Told of every outcome as it happens (the daemon's metrics); must not throw. */
  observer?: TargetObserver
}

export interface SqsConsumerOptions {
  log: SqsLog
  targets: readonly SqsConsumerTarget[]
  /** Shard queues to consume. */
  shards: readonly number[]
  concurrency: number
  now: () => number
  untilIdle: boolean
  stop: AbortSignal
  abort: AbortSignal
  /** With --until-idle: how long SQS may stay unreachable before giving up (exit 5). */
  unreachableGiveUpMs?: number
  /** With --until-idle: give up (exit 5, naming the target) when messages are left and nothing moved for this long. */
  idleTimeoutMs?: number
  onEvent?: (event: PipelineEvent) => void
  /** Said once per outage and once when SQS answers again. */
  onWarning?: (message: string) => void
}

/** What this process remembers of a message between its receives (attempts at several targets). */
interface Memory {
  done: Set<string>
  failures: Failure[]
  lastSeenMs: number
  /** Receives that only put it back behind an earlier message of its key: no attempt, though SQS counts them. */
  skipped: number
  /** Tries made while it was held in hand for a retry (FIFO): attempts SQS did not count as receives. */
  held: number
}

/** A message held in hand for a retry (FIFO): tried again when `until` settles (the backoff, or a stop). */
interface Held {
  until: Promise<unknown>
}

interface TargetRun extends SqsConsumerTarget {
  circuit: CircuitBreaker
  /** The error that last paused it, to say why --until-idle gave up. */
  lastPause?: TargetError
  stats: Omit<TargetStats, 'partitions' | 'lag'>
}

/** Long polling: how long a receive waits for messages (also how long a stop may wait for a poll). */
const POLL_WAIT_SECONDS = 2
/** How often a consumer forgets from the state store what no message can refer to any more. */
const PRUNE_EVERY_MS = 3_600_000
/** A transaction's progress at a target is kept (after a flush) at least every this many parts. */
const PROGRESS_EVERY_PARTS = 16
/** Memories of messages not seen for this long are dropped (another consumer got them, or they died). */
const MEMORY_TTL_MS = 3_600_000
/**
 * How long after its receive a message may stay in hand (FIFO retries and the messages of its key behind
 * it): SQS caps a received message's visibility at 12 hours, and the hour left is for the key's held
 * messages to be applied. A retry due later goes back to the queue for its backoff, as on standard queues.
 */
const HOLD_MAX_MS = (MAX_VISIBILITY_SECONDS - 3600) * 1000
/**
 * At most this many messages are held in hand for retries (the retrying ones and their keys' later ones;
 * bounded memory): past it, a retry goes back to the queue for its backoff, as on standard queues. Held
 * messages do not count towards the receive backpressure, so keys waiting out a backoff do not stop the others.
 */
const MAX_HELD_MESSAGES = 500

export class SqsConsumer {
  private readonly runs: TargetRun[]
  private readonly executor: KeyedExecutor
  private readonly maxInFlight: number
  private inFlight = 0
  private readonly memory = new Map<string, Memory>()
  /** Keys that must wait until this time: later messages of theirs are put back. */
  private readonly blocked = new Map<string, number>()
  /** Receives made so far: each message is tagged with the one that brought it. */
  private receives = 0
  /**
   * Per key, the last receive made when one of its messages went back to the queue (a retry, a delay,
   * put back): its messages brought by that receive or an earlier one are behind it, and go back too —
   * also once the wait is over, which does not mean the earlier one was applied.
   */
  private readonly heldBack = new Map<string, number>()
  /** Messages hidden for a retry, by MessageId → when they are due again (for --until-idle). */
  private readonly retries = new Map<string, number>()
  /**
   * Per shard: whether its last poll, made while none of its messages was being worked on, brought
   * nothing to do now (nothing, or only messages not due yet). A FIFO queue hands out nothing of a group
   * while one of its messages is held, so an empty poll during work says nothing about what waits behind.
   */
  private readonly emptyPolls = new Map<number, boolean>()
  /** Per shard: messages received and not finished. */
  private readonly working = new Map<number, number>()
  private failure: unknown
  private unreachableSinceMs: number | null = null
  /** Aborted when --until-idle gives up: waits for a paused target end, their messages go back. */
  private readonly giveUp = new AbortController()
  /** Aborted once no more is received (stopped, given up, failed): messages held for a retry go back. */
  private readonly holdEnd = new AbortController()
  /** Every message received and not finished, by receipt handle: kept hidden by the heartbeat. */
  private readonly inHand = new Map<string, { url: string; receivedAtMs: number }>()
  /** Messages held for retries: the retrying ones and the later ones of their keys. */
  private held = 0
  private readonly visibilitySeconds: number

  constructor(private readonly options: SqsConsumerOptions) {
    this.executor = new KeyedExecutor(options.concurrency)
    this.maxInFlight = Math.max(20, options.concurrency * 2)
    this.visibilitySeconds = options.log.sqs.visibilityTimeoutSeconds
    this.runs = options.targets.map((t) => ({
      ...t,
      circuit: new CircuitBreaker({ probeIntervalMs: 500, maxProbeIntervalMs: 30_000 }),
      stats: { target: t.settings.name, applied: 0, retried: 0, scheduled: 0, deadLettered: 0, skipped: 0, circuitOpened: 0, txnApplied: 0, txnAborted: 0 },
    }))
  }

  async run(): Promise<TargetStats[]> {
    const queues = await Promise.all(this.options.shards.map((s) => this.options.log.queues.shard(s)))
    for (const name of this.runs.map((r) => r.settings.name)) {
      this.options.onEvent?.({ type: 'partitions', target: name, partitions: [...this.options.shards] })
    }
    const idle = new AbortController()
    // Transactions past txnTimeoutMs without a marker: aborted before anything else, then every second.
    await this.abortExpired().catch((error: unknown) => void (this.failure ??= error))
    const heartbeat = setInterval(() => this.extendInHand(), (this.visibilitySeconds * 1000) / 3)
    try {
      return await this.consume(queues, idle)
    } finally {
      clearInterval(heartbeat)
    }
  }

  private async consume(queues: ShardQueue[], idle: AbortController): Promise<TargetStats[]> {
    const polling = [...queues.map((queue) => this.poll(queue, idle.signal)), this.abortLoop(idle.signal)]
    if (this.options.untilIdle) {
      let moved = -1
      let movedAtMs = Date.now()
      while (!this.options.stop.aborted && this.failure === undefined && !this.isIdle()) {
        const count = this.runs.reduce((n, r) => n + r.stats.applied + r.stats.deadLettered + r.stats.retried + r.stats.scheduled, 0)
        if (count !== moved) {
          moved = count
          movedAtMs = Date.now()
        } else if (this.options.idleTimeoutMs !== undefined && Date.now() - movedAtMs >= this.options.idleTimeoutMs) {
          const paused = this.runs.find((r) => r.circuit.state !== 'closed')
          const run = paused ?? this.runs[0]!
          const why = paused?.lastPause ? `it is paused: ${paused.lastPause.code}: ${paused.lastPause.message}` : 'its messages are not getting applied'
          this.failure ??= new TargetStalledError(run.settings.name, this.options.idleTimeoutMs, why)
          this.giveUp.abort()
          this.holdEnd.abort()
          break
        }
        await sleep(100)
      }
      idle.abort()
    }
    await Promise.all(polling)
    // Messages held for a retry go back once the consumer stops or fails (not when merely idle: a last
    // poll's messages are applied, retries included); only then, so a poll in flight cannot take them again.
    const ending = (): void => {
      if (this.options.stop.aborted || this.failure !== undefined) this.holdEnd.abort()
    }
    ending()
    const watch = setInterval(ending, 100)
    try {
      await Promise.race([this.executor.idle(), new Promise((resolve) => this.options.abort.addEventListener('abort', resolve, { once: true }))])
    } finally {
      clearInterval(watch)
    }
    if (this.failure !== undefined) throw this.failure
    return this.summary(queues)
  }

  /** What each target did so far, read without waiting (for `wal daemon status`). */
  snapshot(): Array<Omit<TargetStats, 'lag'>> {
    return this.runs.map((r) => ({ ...r.stats, partitions: [...this.options.shards] }))
  }

  /**
   * The heartbeat: every message in hand (being applied, waiting behind an earlier one of its key, or held
   * for a retry) is hidden for another visibility timeout, within SQS's 12 hours from its receive.
   */
  private extendInHand(): void {
    const now = Date.now()
    const bySeconds = new Map<string, { url: string; receipts: string[] }>()
    for (const [receipt, { url, receivedAtMs }] of this.inHand) {
      const seconds = Math.min(this.visibilitySeconds, MAX_VISIBILITY_SECONDS - Math.ceil((now - receivedAtMs) / 1000) - 1)
      if (seconds <= 0) continue
      const group = `${seconds} ${url}`
      const found = bySeconds.get(group) ?? { url, receipts: [] }
      found.receipts.push(receipt)
      bySeconds.set(group, found)
    }
    for (const [group, { url, receipts }] of bySeconds) {
      void this.options.log.queues.changeVisibility(url, receipts, Number(group.split(' ')[0])).catch(() => undefined)
    }
  }

  /** A message leaves the hand: hidden for `seconds` (0: back in the queue now). */
  private async release(url: string, receipt: string, seconds: number): Promise<void> {
    this.inHand.delete(receipt)
    await this.options.log.queues.changeVisibility(url, [receipt], seconds)
  }

  private isIdle(): boolean {
    if (this.inFlight > 0 || this.executor.size > 0) return false
    if (this.options.shards.some((s) => this.emptyPolls.get(s) !== true)) return false
    const now = Date.now()
    for (const [id, due] of this.retries) {
      if (due + 5_000 < now) this.retries.delete(id)
      else return false
    }
    return true
  }

  /** Receives from one shard queue until stopped (or idle), handing messages to the executor. */
  private async poll(queue: ShardQueue, idle: AbortSignal): Promise<void> {
    const { stop } = this.options
    // Messages SQS hands to a request given up on stay hidden for the visibility timeout, so a poll in
    // flight is not cut short (it lasts POLL_WAIT_SECONDS at most): on a stop, what it brings is put back
    // at once; once idle, it is applied. Only a hard stop abandons it.
    const signal = AbortSignal.any([stop, idle])
    let backoff = 500
    while (!signal.aborted && this.failure === undefined) {
      // Backpressure, and no new work while a target is paused.
      if (this.inFlight - this.held >= this.maxInFlight || this.runs.some((r) => r.circuit.state !== 'closed')) {
        await sleep(20, undefined, { signal }).catch(() => undefined)
        continue
      }
      let messages: Message[]
      const quiet = (this.working.get(queue.shard) ?? 0) === 0
      const receipt = ++this.receives
      try {
        messages = await this.options.log.queues.receive(
          queue.url,
          { max: MAX_BATCH_ENTRIES, visibilitySeconds: this.visibilitySeconds, waitSeconds: this.options.untilIdle ? 1 : POLL_WAIT_SECONDS },
          this.options.abort,
        )
        if (this.unreachableSinceMs !== null) {
          this.unreachableSinceMs = null
          this.options.onWarning?.(`SQS answers again (${queue.name}); consuming`)
        }
        backoff = 500
      } catch (error) {
        if (this.options.abort.aborted) return
        const walError = error as WalError
        if (!(walError instanceof BackendUnavailableError)) {
          this.failure ??= error
          return
        }
        if (this.unreachableSinceMs === null) {
          this.unreachableSinceMs = Date.now()
          this.options.onWarning?.(`${walError.message}; retrying with backoff`)
        } else if (this.options.untilIdle && Date.now() - this.unreachableSinceMs > (this.options.unreachableGiveUpMs ?? 30_000)) {
          this.failure ??= error
          return
        }
        await sleep(backoff, undefined, { signal }).catch(() => undefined)
        backoff = Math.min(30_000, backoff * 2)
        continue
      }
      // Messages not due yet, or waiting behind an earlier one of their key, are only put back: no work.
      // That includes one behind a waiting message of its key in this same batch (a FIFO receive can
      // hand over several messages of one group at once).
      const nowMs = this.options.now()
      const waitingKeys = new Set<string>()
      const received = messages.map((message) => {
        const { partition: _p, offset: _o, appendedAtMs: _a, ...mutation } = this.options.log.decode(message, { queue: queue.name, shard: queue.shard, namespace: this.options.log.namespace })
        const waits = (mutation.notBeforeMs !== null && mutation.notBeforeMs > nowMs) || (this.blocked.get(mutation.key) ?? 0) > Date.now() || waitingKeys.has(mutation.key)
        if (waits) waitingKeys.add(mutation.key)
        return { message, mutation, waits }
      })
        this.emptyPolls.set(queue.shard, quiet && received.every((r) => r.waits))
      const receivedAtMs = Date.now()
      for (const { message, mutation, waits } of received) {
        this.inFlight++
        if (!waits) this.working.set(queue.shard, (this.working.get(queue.shard) ?? 0) + 1)
        this.inHand.set(message.ReceiptHandle!, { url: queue.url, receivedAtMs })
        // Held for a retry (FIFO): tried again here after the backoff, still ahead of its key's later ones.
        const task = async (): Promise<void> => {
          const held = await this.process(queue, message, mutation, receipt)
          if (held !== undefined) return this.executor.again(mutation.key, held.until, task)
          this.inHand.delete(message.ReceiptHandle!)
          this.inFlight--
          if (!waits) this.working.set(queue.shard, this.working.get(queue.shard)! - 1)
        }
        this.executor.push(mutation.key, task)
      }
    }
  }

  /**
   * One message, from gate to deleted (or hidden for a retry). Returns when to try it again if it is held
   * in hand for a retry. Never throws: failures stop the consumer.
   */
  private async process(queue: ShardQueue, message: Message, mutation: Mutation, received: number): Promise<Held | undefined> {
    const receipt = message.ReceiptHandle!
    const now = this.options.now()
    if (this.options.stop.aborted || this.holdEnd.signal.aborted) {
      // Stopping: what has not started, or is held for a retry, goes back to the queue for the next
      // consumer, now, and the key's later ones behind it (no attempt is counted).
      this.block(mutation.key, 0)
      await this.release(queue.url, receipt, 0).catch(() => undefined)
      return
    }
    const inHandMs = Date.now() - (this.inHand.get(receipt)?.receivedAtMs ?? Date.now())
    try {
      const poison = (mutation as Partial<LogRecord>).poison
      if (poison) {
        // Cannot be decoded: never applied; dead-lettered for each target as read, then deleted.
        for (const run of this.runs) await this.deadLetter(queue, run, mutation, new TargetError(poison.error, { errorClass: 'poison', code: POISON_CODE }), false, message.MessageId!)
        await this.deleteAfterFlush(queue.url, receipt)
        return
      }
      const blockedUntil = this.blocked.get(mutation.key) ?? 0
      const behind = (this.heldBack.get(mutation.key) ?? 0) >= received
      if (behind || blockedUntil > Date.now() || inHandMs > HOLD_MAX_MS) {
        // An earlier message of this key waits, or went back to the queue after this one was received: this
        // one goes back behind it (SQS hands the key out in order again), and that receive was no attempt.
        // So does one held too long behind a retry (SQS's 12-hour visibility cap), and the key's later ones.
        this.remember(message.MessageId!).skipped++
        if (inHandMs > HOLD_MAX_MS) this.block(mutation.key, 0)
        await this.release(queue.url, receipt, Math.max(0, Math.ceil((blockedUntil - Date.now()) / 1000)))
        return
      }
      this.blocked.delete(mutation.key)
      this.heldBack.delete(mutation.key)
      if (mutation.notBeforeMs !== null && mutation.notBeforeMs > now) {
        await this.wait(queue, message, mutation, mutation.notBeforeMs - now)
        return
      }
      return await this.apply(queue, message, mutation)
    } catch (error) {
      if (!this.options.abort.aborted && !this.options.stop.aborted) {
        // SQS unreachable mid-way: the message comes back when its visibility lapses; nothing is lost.
        if (error instanceof BackendUnavailableError || error instanceof DurabilityUnknownError) {
          this.options.onWarning?.(`${error.message}; the message comes back after its visibility timeout`)
        } else this.failure ??= error
      }
    }
  }

  private prunedAtMs = 0

  private async abortLoop(idle: AbortSignal): Promise<void> {
    const signal = AbortSignal.any([this.options.stop, idle])
    while (!signal.aborted && this.failure === undefined) {
      await sleep(1000, undefined, { signal }).catch(() => undefined)
      if (signal.aborted) return
      await this.abortExpired().catch((error: unknown) => {
        if (!(error instanceof BackendUnavailableError || error instanceof DurabilityUnknownError)) this.failure ??= error
      })
    }
  }

  /**
   * Aborts the transactions of the state store that had no marker within txnTimeoutMs, and files a DLQ
   * entry of class txn-aborted for each target (once: the store records what was filed).
   */
  private async abortExpired(): Promise<void> {
    const { log } = this.options
    const store = log.stateStore(false)
    if (store === undefined) return
    if (Date.now() - this.prunedAtMs > PRUNE_EVERY_MS) {
      this.prunedAtMs = Date.now()
      store.prune(Date.now() - STORE_KEEP_MS)
    }
    const timeoutMs = log.settings.txnTimeoutMs
    for (const run of this.runs) {
      for (const txn of store.abortExpired(run.settings.name, Date.now(), timeoutMs)) {
        const entry = abortedTxnEntry(log.namespace, txn, timeoutMs, this.options.now())
        try {
          await this.deadLetter({ shard: txn.partition, name: '', url: '' }, run, entry.mutation, new TargetError(entry.message, { errorClass: TXN_ABORTED_CLASS, code: TXN_ABORTED_CODE }), false)
        } catch (error) {
          store.unclaim(run.settings.name, txn.id)
          throw error
        }
        run.stats.txnAborted++
        run.observer?.txnAborted?.(txn.id)
      }
    }
  }

  /**
   * A transaction's marker: reads its parts from the state store and applies them to each target in
   * sequence order, from the one after the last it applied (progress kept in the store after the target
   * flushed, so a consumer killed mid-way leaves the next one to resume there). A part that must be
   * retried holds the marker back for the backoff; a part that fails for good is dead-lettered alone.
   */
  private async applyTransaction(queue: ShardQueue, message: Message, marker: Mutation, txnId: string, attempt: number, memory: Memory): Promise<Held | undefined> {
    const { log } = this.options
    const id = message.MessageId!
    const store = log.stateStore(false)
    const stored = store?.received(txnId, Date.now())
    const role = txnOf(marker)
    const expected = role?.marker ? role.parts : null
    const contiguous = stored !== undefined && stored.parts.every((p, i) => p.seq === i)
    const missing =
      stored === undefined || stored.parts.length === 0
        ? `the state store${store === undefined ? ' (none in this state directory)' : ''} holds none of its parts`
        : !contiguous || (expected !== null && stored.parts.length < expected)
          ? `${(expected ?? stored.parts.length) - stored.parts.filter((p, i) => p.seq === i).length} of its parts are missing from the state store`
          : undefined
    if (stored?.state === 'aborted') {
      // Aborted before its marker came: never applied (its DLQ entry says so).
      this.options.onWarning?.(`marker of transaction ${JSON.stringify(txnId)} came after it was aborted (txnTimeoutMs): its parts are not applied`)
    } else if (missing !== undefined) {
      const error = new TargetError(`transaction ${JSON.stringify(txnId)} cannot be applied: ${missing}`, { errorClass: 'poison', code: POISON_CODE })
      for (const run of this.runs) await this.deadLetter(queue, run, { ...marker, attempts: attempt }, error, false)
    } else {
      const parts = stored!.parts.map((p) => ({ seq: p.seq, mutation: decodeEnvelopeLine(p.envelope, { namespace: log.namespace, forceNamespace: true, nowMs: stored!.openedAtMs }) }))
      let retryInMs: number | null = null
      for (const run of this.runs) {
        if (memory.done.has(run.settings.name)) continue
        const name = run.settings.name
        const progress = store!.progress(name, txnId)
        if (progress?.state === 'applied' || progress?.state === 'aborted') {
          memory.done.add(name)
          continue
        }
        let applied = progress?.appliedSeq ?? -1
        let saved = applied
        let held = false
        for (const { seq, mutation: part } of parts) {
          if (seq <= applied) continue
          if (part.target === null || part.target === name) {
            const outcome = await this.applyTo(run, part, attempt, memory)
            if (outcome === 'aborted') {
              if (applied > saved) await this.saveProgress(run, txnId, applied, false)
              this.block(marker.key, 0)
              await this.release(queue.url, message.ReceiptHandle!, 0).catch(() => undefined)
              return
            }
            if (outcome !== 'applied' && 'retryInMs' in outcome) {
              retryInMs = Math.max(retryInMs ?? 0, outcome.retryInMs)
              held = true
              break
            }
            if (outcome !== 'applied') await this.deadLetter(queue, run, { ...part, attempts: attempt, failures: [...part.failures, ...memory.failures].slice(-MAX_FAILURES) }, outcome.dead, false)
          }
          applied = seq
          if (applied - saved >= PROGRESS_EVERY_PARTS) {
            await this.saveProgress(run, txnId, applied, false)
            saved = applied
          }
        }
        if (held) {
          if (applied > saved) await this.saveProgress(run, txnId, applied, false)
          continue
        }
        await this.saveProgress(run, txnId, applied, true)
        memory.done.add(name)
        run.stats.txnApplied++
      }
      if (retryInMs !== null) return this.retry(queue, message, marker.key, retryInMs, memory)
    }
    this.memory.delete(id)
    this.retries.delete(id)
    await this.deleteAfterFlush(queue.url, message.ReceiptHandle!)
  }

  /** Progress of a transaction at a target, kept once the target made what it applied durable. */
  private async saveProgress(run: TargetRun, txnId: string, appliedSeq: number, done: boolean): Promise<void> {
    await run.target.flush?.()
    this.options.log.stateStore(true)!.setProgress(run.settings.name, txnId, appliedSeq, done, Date.now())
  }

  /** A message not due yet: re-sent with the rest of its delay (standard), or hidden until due (FIFO). */
  private async wait(queue: ShardQueue, message: Message, mutation: Mutation, remainingMs: number): Promise<void> {
    const { log } = this.options
    for (const run of this.runs) run.stats.scheduled++
    if (log.sqs.fifo) {
      // Hidden up to 12 hours at a time: each wait is a receive, so few long ones. A maxNativeDelaySeconds
      // set below SQS's 900 caps these waits too.
      const cap = log.sqs.maxNativeDelaySeconds < MAX_DELAY_SECONDS ? log.sqs.maxNativeDelaySeconds : MAX_VISIBILITY_SECONDS
      const seconds = Math.min(Math.ceil(remainingMs / 1000), cap)
      this.block(mutation.key, Date.now() + seconds * 1000)
      await this.release(queue.url, message.ReceiptHandle!, seconds)
      return
    }
    // The copy is durable before the original goes: a crash in between delivers it twice, never zero times.
    const copy = log.outgoing(mutation, { fifo: false, delaySeconds: Math.min(remainingMs / 1000, log.sqs.maxNativeDelaySeconds) })
    const [sent] = await log.queues.sendAll(queue.url, [copy])
    if (sent!.error) throw sent!.error
    this.inHand.delete(message.ReceiptHandle!)
    await log.queues.delete(queue.url, [message.ReceiptHandle!])
  }

  /** A message of this key went back to the queue until `untilMs`: the later ones of the key wait behind it. */
  private block(key: string, untilMs: number): void {
    this.blocked.set(key, untilMs)
    this.heldBack.set(key, this.receives)
  }

  /** What this process remembers of a message (made on first sight), marked as seen now. */
  private remember(id: string): Memory {
    const memory = this.memory.get(id) ?? { done: new Set<string>(), failures: [], lastSeenMs: 0, skipped: 0, held: 0 }
    memory.lastSeenMs = Date.now()
    this.memory.set(id, memory)
    return memory
  }

  private async apply(queue: ShardQueue, message: Message, mutation: Mutation): Promise<Held | undefined> {
    const id = message.MessageId!
    const memory = this.remember(id)
    // Tries, not receives: those that only put it back behind an earlier message of its key spend nothing,
    // and those made while it was held for a retry (no receive) count.
    const attempt = Math.max(1, Number(message.Attributes?.ApproximateReceiveCount ?? 1) - memory.skipped) + memory.held
    if (mutation.target !== null && !this.runs.some((r) => r.settings.name === mutation.target)) {
      // Addressed to a target the namespace no longer has: dead-lettered with why, never dropped.
      await this.deadLetterUnknownTarget(queue, { ...mutation, attempts: attempt }, id)
      await this.deleteAfterFlush(queue.url, message.ReceiptHandle!)
      return
    }
    const txn = txnOf(mutation)
    if (txn?.marker) return this.applyTransaction(queue, message, mutation, txn.id, attempt, memory)
    const runs = this.runs.filter((r) => (mutation.target === null || mutation.target === r.settings.name) && !memory.done.has(r.settings.name))
    let retryInMs: number | null = null
    const dead: Array<{ run: TargetRun; error: TargetError }> = []
    for (const run of runs) {
      const outcome = await this.applyTo(run, mutation, attempt, memory)
      if (outcome === 'applied') memory.done.add(run.settings.name)
      else if (outcome === 'aborted') {
        // Stopped: back to the queue at once for the next consumer (what was applied is applied again).
        this.block(mutation.key, 0)
        await this.release(queue.url, message.ReceiptHandle!, 0).catch(() => undefined)
        return
      }
      else if ('retryInMs' in outcome) retryInMs = Math.max(retryInMs ?? 0, outcome.retryInMs)
      else dead.push({ run, error: outcome.dead })
    }
    for (const { run, error } of dead) {
      await this.deadLetter(queue, run, { ...mutation, attempts: attempt, failures: [...mutation.failures, ...memory.failures].slice(-MAX_FAILURES) }, error, runs.length > 1, id)
      memory.done.add(run.settings.name)
    }
    if (retryInMs !== null) return this.retry(queue, message, mutation.key, retryInMs, memory)
    this.memory.delete(id)
    this.retries.delete(id)
    await this.deleteAfterFlush(queue.url, message.ReceiptHandle!)
  }

  /**
   * A retry after `retryInMs`. On FIFO queues the message stays in hand (kept hidden by the heartbeat),
   * and so do the later ones of its key received with it, and it is tried again here after the backoff:
   * nothing goes back to the queue, so no receive is spent (SQS's redrive counts receives, not tries; a
   * key's later messages put back at each retry of an earlier one would reach maxReceiveCount). Returns
   * when to try again. On standard queues, or when the hold would pass SQS's 12-hour visibility cap, the
   * message is hidden for the backoff and received again; on FIFO queues its key's later ones go back too.
   */
  private async retry(queue: ShardQueue, message: Message, key: string, retryInMs: number, memory: Memory): Promise<Held | undefined> {
    const receipt = message.ReceiptHandle!
    const receivedAtMs = this.inHand.get(receipt)?.receivedAtMs ?? Date.now()
    // This message and the later ones of its key waiting behind it.
    const count = this.executor.queued(key)
    if (this.options.log.sqs.fifo && Date.now() + retryInMs - receivedAtMs <= HOLD_MAX_MS && this.held + count <= MAX_HELD_MESSAGES) {
      this.retries.set(message.MessageId!, Date.now() + retryInMs)
      memory.held++
      this.held += count
      // Not ended by the stop itself but once polling ended: a poll in flight at a stop could receive it
      // again (a receive counted) if it went back before.
      const signal = AbortSignal.any([this.options.abort, this.holdEnd.signal])
      const until = sleep(retryInMs, undefined, { signal })
        .catch(() => undefined)
        .then(() => void (this.held -= count))
      return { until }
    }
    const seconds = Math.min(MAX_VISIBILITY_SECONDS, Math.max(1, Math.ceil(retryInMs / 1000)))
    this.block(key, Date.now() + seconds * 1000)
    this.retries.set(message.MessageId!, Date.now() + seconds * 1000)
    await this.release(queue.url, receipt, seconds)
    this.forgetOld()
    return undefined
  }

  private deleting: Array<{ url: string; receipt: string; resolve: () => void; reject: (error: unknown) => void }> = []
  private flushing = false

  /**
   * Deletes a message once the targets made what was applied durable (their flush), as the offset
   * pipeline commits only after a flush. Deletes that arrive meanwhile share the next flush and batch.
   */
  private deleteAfterFlush(url: string, receipt: string): Promise<void> {
    this.inHand.delete(receipt)
    return new Promise<void>((resolve, reject) => {
      this.deleting.push({ url, receipt, resolve, reject })
      if (!this.flushing) void this.flushAndDelete()
    })
  }

  private async flushAndDelete(): Promise<void> {
    this.flushing = true
    try {
      while (this.deleting.length > 0) {
        const batch = this.deleting.splice(0)
        try {
          await Promise.all(this.runs.map((r) => r.target.flush?.()))
          const byUrl = new Map<string, string[]>()
          for (const d of batch) byUrl.set(d.url, [...(byUrl.get(d.url) ?? []), d.receipt])
          await Promise.all([...byUrl].map(([url, receipts]) => this.options.log.queues.delete(url, receipts)))
          for (const d of batch) d.resolve()
        } catch (error) {
          for (const d of batch) d.reject(error)
        }
      }
    } finally {
      this.flushing = false
    }
  }

  private async applyTo(run: TargetRun, mutation: Mutation, attempt: number, memory: Memory): Promise<'applied' | 'aborted' | { retryInMs: number } | { dead: TargetError }> {
    const { abort, stop } = this.options
    // Waiting for a paused target or the rate limit is not an apply: a stop ends the wait.
    const waiting = AbortSignal.any([stop, abort, this.giveUp.signal])
    for (;;) {
      let probe: boolean
      try {
        probe = await run.circuit.allow(waiting)
        for (const limiter of run.limiters) await limiter.take(waiting)
      } catch (error) {
        if (waiting.aborted) return 'aborted'
        throw error
      }
      const startedMs = performance.now()
      try {
        await run.target.apply({ ...mutation, attempts: attempt - 1 }, { attempt, signal: abort })
        run.circuit.succeeded(probe)
        run.stats.applied++
        run.observer?.applied(mutation, performance.now() - startedMs)
        return 'applied'
      } catch (thrown) {
        if (abort.aborted) return 'aborted'
        const error = toTargetError(thrown)
        if (error.errorClass === 'infrastructure') {
          run.lastPause = error
          const wasClosed = run.circuit.state === 'closed'
          run.circuit.failed(probe)
          if (wasClosed) {
            run.stats.circuitOpened++
            this.options.onEvent?.({ type: 'circuit-open', target: run.settings.name, error })
          }
          continue
        }
        run.circuit.released(probe)
        memory.failures = [...memory.failures, this.failureOf(run, error, attempt)].slice(-MAX_FAILURES)
        if (error.errorClass === 'fatal' || attempt >= run.settings.retry.maxAttempts) return { dead: error }
        run.stats.retried++
        run.observer?.retried(mutation)
        return { retryInMs: backoffMs(run.settings.retry, attempt) }
      }
    }
  }

  private failureOf(run: TargetRun, error: TargetError, attempt: number): Failure {
    return { atMs: this.options.now(), target: run.settings.name, errorClass: error.errorClass, message: cutText(error.message, MAX_FAILURE_MESSAGE_CHARS), attempt, code: error.code }
  }

  /**
   * Sends the mutation to the DLQ with why; the caller deletes the original only after. On FIFO queues
   * the deduplication id is the target and the received message's MessageId: a consumer that lost the
   * message to another (frozen past its visibility timeout) and dead-letters it too files no second
   * entry, while a replayed copy (a new message) can be dead-lettered again. (Without one, e.g. a
   * transaction's part: its id and attempt.)
   */
  private async deadLetter(queue: ShardQueue, run: TargetRun, mutation: Mutation, error: TargetError, addressed: boolean, messageId?: string): Promise<void> {
    const { log } = this.options
    const atMs = this.options.now()
    const copy = log.outgoing(addressed ? { ...mutation, target: run.settings.name } : mutation, {
      fifo: log.sqs.fifo,
      dead: { target: run.settings.name, errorClass: error.errorClass, code: error.code, message: error.message, atMs, shard: queue.shard },
      deduplicationId: messageId === undefined ? `dead:${run.settings.name}:${mutation.id}:${mutation.attempts}` : `dead:${run.settings.name}:${messageId}`,
      groupId: `dead:${run.settings.name}:${mutation.id}`,
    })
    const [sent] = await log.queues.sendAll(await log.queues.url(log.queues.names.dlq), [copy])
    if (sent!.error) throw sent!.error
    run.stats.deadLettered++
    run.observer?.deadLettered(mutation)
    this.options.onEvent?.({ type: 'dead-lettered', target: run.settings.name, mutation, error })
  }

  private async deadLetterUnknownTarget(queue: ShardQueue, mutation: Mutation, messageId: string): Promise<void> {
    const { log } = this.options
    const message = `namespace "${log.namespace}" has no target "${mutation.target}"`
    const copy = log.outgoing(mutation, {
      fifo: log.sqs.fifo,
      dead: { target: mutation.target!, errorClass: 'fatal', code: 'WAL_TARGET_UNKNOWN', message, atMs: this.options.now(), shard: queue.shard },
      deduplicationId: `dead:${mutation.target}:${messageId}`,
      groupId: `dead:${mutation.target}:${mutation.id}`,
    })
    const [sent] = await log.queues.sendAll(await log.queues.url(log.queues.names.dlq), [copy])
    if (sent!.error) throw sent!.error
    this.options.onWarning?.(`dead-lettered ${mutation.id}: ${message}`)
  }

  /** Drops what this process remembers of messages, keys and retries long gone (bounded memory). */
  private forgetOld(): void {
    const now = Date.now()
    // Not those held for a long retry: their tries made in hand are counted there.
    if (this.memory.size >= 10_000) for (const [id, m] of this.memory) if (m.lastSeenMs < now - MEMORY_TTL_MS && !((this.retries.get(id) ?? 0) > now - MEMORY_TTL_MS)) this.memory.delete(id)
    if (this.blocked.size >= 10_000) for (const [key, until] of this.blocked) if (until < now) this.blocked.delete(key)
    if (this.heldBack.size >= 10_000) for (const [key, receive] of this.heldBack) if (receive < this.receives - 1000) this.heldBack.delete(key)
    if (this.retries.size >= 10_000) for (const [id, due] of this.retries) if (due + MEMORY_TTL_MS < now) this.retries.delete(id)
  }

  private async summary(queues: ShardQueue[]): Promise<TargetStats[]> {
    let lag = 0
    for (const queue of queues) {
      const a = await this.options.log.queues.attributes(queue.url, ['ApproximateNumberOfMessages']).catch(() => ({}) as Record<string, string>)
      lag += Number(a.ApproximateNumberOfMessages ?? 0)
    }
    return this.runs.map((r) => ({ ...r.stats, partitions: [...this.options.shards], lag }))
  }
}
