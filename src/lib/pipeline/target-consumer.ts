/**
 * The consumer pipeline of one target: read → delay gate → apply → retry/backoff → DLQ → commit.
 *
 * - Partitions come from leases (a shard I/N or a fair share), renewed by heartbeat.
 * - Mutations of different keys are applied concurrently; a key's mutations one at a time, in order.
 * - A mutation that must wait — delayed (notBefore), backing off longer than IN_PROCESS_BACKOFF_MAX_MS,
 *   or queued behind a waiting mutation of its key — moves to the schedule in the log's state, so the
 *   offsets move on, other keys are not held up, and a restart neither loses nor resets it.
 * - Infrastructure errors pause the target (circuit breaker) without spending attempts; fatal errors and
 *   spent attempts dead-letter the mutation with its failure history.
 * - Offsets are committed only after the target flushed what was applied, together with the schedule
 *   changes, dead letters and history, in one transaction of the log's state.
 */
import { setTimeout as sleep } from 'node:timers/promises'

import type { RetryPolicy, TargetSettings } from '../config/schema.js'
import { cutText, MAX_FAILURE_MESSAGE_CHARS, MAX_FAILURES, POISON_CODE, type Failure, type Mutation } from '../envelope/envelope.js'
import type { ConsumerCommit, ConsumerStore, LogBackend, ShardRequest } from '../log/backend.js'
import { CircuitBreaker } from './circuit-breaker.js'
import { KeyedExecutor } from './keyed-executor.js'
import { PartitionProgress } from './partition-progress.js'
import type { RateLimiter } from './rate-limiter.js'
import { IN_PROCESS_BACKOFF_MAX_MS, backoffMs } from './retry.js'
import { TargetError, toTargetError, type Target } from '../targets/target.js'

/** Mutations read from the log and not yet done, at most (backpressure on reading). */
const MAX_IN_FLIGHT = 2000
/** Mutations read per turn: between turns, timers (commits, lease heartbeats) and I/O get their turn. */
const READ_BATCH = 1000
const SCHEDULED_BATCH = 200

export interface TargetConsumerOptions {
  log: LogBackend
  store: ConsumerStore
  target: Target
  settings: TargetSettings
  owner: string
  shard: ShardRequest
  concurrency: number
  /** Shared with other targets (the namespace's limit) or its own (the target's, --rate). */
  limiters: readonly RateLimiter[]
  /** wal's clock: what "now" is for delays and schedules. */
  now: () => number
  untilIdle: boolean
  /** Graceful stop: stop reading, finish what is in flight, commit. */
  stop: AbortSignal
  /** Hard stop: abandon what is in flight (it is redone by the next consumer). */
  abort: AbortSignal
  leaseTtlMs: number
  commitIntervalMs: number
  pollIntervalMs: number
  onEvent?: (event: PipelineEvent) => void
  /** Told of every outcome as it happens (the daemon's metrics); must not throw. */
  observer?: TargetObserver
}

/** Per-mutation outcomes, for metrics: apply time, and the time since the mutation was created. */
export interface TargetObserver {
  applied(mutation: Mutation, applyMs: number): void
  retried(mutation: Mutation): void
  deadLettered(mutation: Mutation): void
}

export type PipelineEvent =
  | { type: 'dead-lettered'; target: string; mutation: Mutation; error: TargetError }
  | { type: 'circuit-open'; target: string; error: TargetError }
  | { type: 'partitions'; target: string; partitions: number[] }

export interface TargetStats {
  target: string
  partitions: number[]
  applied: number
  retried: number
  scheduled: number
  deadLettered: number
  circuitOpened: number
  /** Mutations in owned partitions not yet committed by this target. */
  lag: number
}

type Item =
  | { source: 'log'; partition: number; offset: number; mutation: Mutation; poison?: string }
  | { source: 'scheduled'; partition: number; seq: number; mutation: Mutation }

function emptyChange(): ConsumerCommit {
  return { offsets: new Map(), schedule: [], reschedule: [], unschedule: [], deadLetters: [], history: [] }
}

export class TargetConsumer {
  private owned: number[] = []
  /** Partitions the shard should hold (some may still be leased to a consumer that died). */
  private wanted: number[] = []
  /** Offsets read, in flight and committed, per partition (owned or being given up). */
  private readonly progress = new PartitionProgress()
  /** Scheduled entries (committed or about to be) per key: while > 0, new mutations of the key queue behind. */
  private readonly scheduledCount = new Map<string, number>()
  /** Keys whose scheduled head is in flight or whose change awaits commit: not fetched again meanwhile. */
  private readonly busyKeys = new Set<string>()
  private change = emptyChange()
  private changedKeys: string[] = []
  private readonly executor: KeyedExecutor
  private readonly circuit = new CircuitBreaker({ probeIntervalMs: 500, maxProbeIntervalMs: 30_000 })
  private inFlight = 0
  private committing: Promise<void> | undefined
  /** A commit asked for while one was under way: it runs when that one ends. */
  private nextCommit: Promise<void> | undefined
  private failure: unknown
  private readonly stats: Omit<TargetStats, 'partitions' | 'lag'>
  private readonly policy: RetryPolicy

  constructor(private readonly options: TargetConsumerOptions) {
    this.executor = new KeyedExecutor(options.concurrency)
    this.policy = options.settings.retry
    this.stats = { target: options.settings.name, applied: 0, retried: 0, scheduled: 0, deadLettered: 0, circuitOpened: 0 }
  }

  /** Runs until stopped (or idle, with untilIdle); resolves with what it did. */
  async run(): Promise<TargetStats> {
    const { stop } = this.options
    await this.heartbeat()
    const heartbeat = setInterval(() => void this.heartbeat().catch((error) => this.fail(error)), this.options.leaseTtlMs / 3)
    const commits = setInterval(() => void this.commit().catch((error) => this.fail(error)), this.options.commitIntervalMs)
    try {
      while (!stop.aborted && this.failure === undefined) {
        const dispatched = (await this.dispatchScheduled()) + (await this.dispatchLog())
        if (dispatched > 0) {
          // Fast targets finish in microtasks: yield, or commits and heartbeats would wait for the backlog.
          await new Promise((resolve) => setImmediate(resolve))
          continue
        }
        if (this.options.untilIdle && (await this.idle())) break
        // Caught up with nothing in flight: commit now rather than at the next tick (lower latency).
        if (this.executor.size === 0) await this.commit()
        await sleep(this.options.pollIntervalMs, undefined, { signal: stop }).catch(() => undefined)
      }
      await Promise.race([this.executor.idle(), new Promise((resolve) => this.options.abort.addEventListener('abort', resolve, { once: true }))])
      if (this.failure !== undefined) throw this.failure
      await this.commit()
      return await this.summary()
    } finally {
      clearInterval(heartbeat)
      clearInterval(commits)
      if (this.failure === undefined) await this.options.store.release(this.options.owner).catch(() => undefined)
    }
  }

  /** What it did so far and the partitions it owns now, read without waiting (for `wal daemon status`). */
  snapshot(): Omit<TargetStats, 'lag'> {
    return { ...this.stats, partitions: [...this.owned] }
  }

  private fail(error: unknown): void {
    this.failure ??= error
  }

  /** Nothing in flight, nothing to read, nothing scheduled that is due. */
  private async idle(): Promise<boolean> {
    if (this.executor.size > 0 || this.inFlight > 0) return false
    // Partitions still leased to a consumer that stopped: not idle until their lease lapses and they are ours.
    if (this.wanted.some((p) => !this.owned.includes(p))) return false
    await this.commit()
    if (this.busyKeys.size > 0) return false
    const marks = await this.options.log.marks()
    for (const p of this.owned) if (this.progress.position(p) < marks[p]!.high) return false
    const due = await this.options.store.nextDueAtMs(this.owned)
    return due === null || due > this.options.now()
  }

  /** Claims or renews leases; takes on new partitions and lets go of those no longer ours. */
  private async heartbeat(): Promise<void> {
    const { owned, wanted } = await this.options.store.claim(this.options.owner, this.options.shard, this.options.leaseTtlMs)
    this.wanted = wanted
    const added = owned.filter((p) => !this.owned.includes(p))
    const removed = this.owned.filter((p) => !owned.includes(p))
    if (added.length === 0 && removed.length === 0) return
    this.owned = owned
    if (added.length > 0) {
      const committed = await this.options.store.committed(added)
      for (const [p, offset] of committed) {
        this.progress.start(p, offset)
      }
      for (const [key, n] of await this.options.store.scheduledKeyCounts(added)) this.scheduledCount.set(key, n)
    }
    // Partitions given up are released once what was read from them is done and committed.
    if (removed.length > 0) void this.releaseWhenDone(removed)
    this.options.onEvent?.({ type: 'partitions', target: this.options.settings.name, partitions: [...owned] })
  }

  private async releaseWhenDone(partitions: number[]): Promise<void> {
    while (!this.options.stop.aborted && partitions.some((p) => this.progress.busy(p))) await sleep(this.options.pollIntervalMs)
    await this.commit()
    for (const p of partitions) {
      if (this.owned.includes(p)) continue
      this.progress.forget(p)
    }
    await this.options.store.release(this.options.owner, partitions.filter((p) => !this.owned.includes(p)))
  }

  private async dispatchScheduled(): Promise<number> {
    if (this.owned.length === 0) return 0
    const due = await this.options.store.dueScheduled(this.owned, this.options.now(), SCHEDULED_BATCH, this.busyKeys)
    for (const entry of due) {
      this.busyKeys.add(entry.mutation.key)
      const item: Item = { source: 'scheduled', partition: entry.partition, seq: entry.seq, mutation: entry.mutation }
      this.executor.push(entry.mutation.key, () => this.process(item))
    }
    return due.length
  }

  private async dispatchLog(): Promise<number> {
    // Read a page only when all of it fits in flight: a page cut short is read again from the log next
    // turn, and with a slow target (a remote database) that re-reading would cost more than the applies.
    if (this.owned.length === 0 || this.inFlight > MAX_IN_FLIGHT - READ_BATCH) return 0
    let dispatched = 0
    const from = new Map(this.owned.map((p) => [p, this.progress.position(p)]))
    for await (const record of this.options.log.read({ from })) {
      this.progress.read(record.partition, record.offset)
      this.inFlight++
      dispatched++
      const { partition, offset } = record
      // Spelled out (not a rest spread): this runs once per mutation.
      const mutation: Mutation = {
        id: record.id,
        namespace: record.namespace,
        key: record.key,
        payload: record.payload,
        headers: record.headers,
        createdAtMs: record.createdAtMs,
        notBeforeMs: record.notBeforeMs,
        target: record.target,
        idempotencyKey: record.idempotencyKey,
        attempts: record.attempts,
        failures: record.failures,
      }
      const item: Item = record.poison ? { source: 'log', partition, offset, mutation, poison: record.poison.error } : { source: 'log', partition, offset, mutation }
      this.executor.push(mutation.key, () => this.process(item))
      if (this.inFlight >= MAX_IN_FLIGHT || dispatched >= READ_BATCH || this.options.stop.aborted) break
    }
    return dispatched
  }

  /** One mutation, from gate to done. Never throws: every outcome is recorded. */
  private async process(item: Item): Promise<void> {
    const { mutation } = item
    const now = this.options.now()
    if (this.options.stop.aborted) {
      // Stopping: only what already started is finished; this one is left for the next consumer.
      if (item.source === 'log') this.abandon(item)
      return
    }
    try {
      if (item.source === 'log' && item.poison !== undefined) {
        // Cannot be decoded: never applied, dead-lettered as read, and the partition moves on.
        this.deadLetter(item, new TargetError(item.poison, { errorClass: 'poison', code: POISON_CODE }))
        return
      }
      if (mutation.target !== null && mutation.target !== this.options.settings.name) {
        // Addressed to another target of the namespace: nothing to do here.
        if (item.source === 'log') this.finishLog(item)
        else this.done(item, { mutationId: mutation.id, atMs: now, event: 'applied', attempt: mutation.attempts })
        return
      }
      if (item.source === 'log' && (this.scheduledCount.get(mutation.key) ?? 0) > 0) {
        // A mutation of this key is waiting: queue behind it, keeping the key's order.
        this.schedule(item, mutation.notBeforeMs ?? 0)
        return
      }
      const notBeforeMs = this.options.target.deliveryTimeMs ? this.options.target.deliveryTimeMs(mutation) : mutation.notBeforeMs
      if (notBeforeMs !== null && notBeforeMs > now) {
        this.schedule(item, notBeforeMs)
        return
      }
      await this.applyWithRetries(item)
    } catch (error) {
      // Stopped while waiting (circuit, rate limit): left as it was, so the next consumer redoes it.
      if (!this.options.stop.aborted && !this.options.abort.aborted) this.fail(error)
      if (item.source === 'log') this.abandon(item)
    }
  }

  private async applyWithRetries(item: Item): Promise<void> {
    const { mutation } = item
    for (;;) {
      const probe = await this.circuit.allow(this.options.abort)
      for (const limiter of this.options.limiters) await limiter.take(this.options.abort)
      const attempt = mutation.attempts + 1
      const startedMs = performance.now()
      try {
        await this.options.target.apply(mutation, { attempt, signal: this.options.abort })
        this.circuit.succeeded(probe)
        mutation.attempts = attempt
        this.stats.applied++
        this.options.observer?.applied(mutation, performance.now() - startedMs)
        // A first-try apply straight from the log needs no history row: the committed offset passing it
        // says it was applied. Anything with a story (retries, a wait in the schedule) gets one.
        const plain = item.source === 'log' && attempt === 1
        this.done(item, plain ? undefined : { mutationId: mutation.id, atMs: this.options.now(), event: 'applied', attempt })
        return
      } catch (thrown) {
        if (this.options.abort.aborted) {
          if (item.source === 'log') this.abandon(item)
          return
        }
        const error = toTargetError(thrown)
        if (error.errorClass === 'infrastructure') {
          const wasClosed = this.circuit.state === 'closed'
          this.circuit.failed(probe)
          if (wasClosed) {
            this.stats.circuitOpened++
            this.options.onEvent?.({ type: 'circuit-open', target: this.options.settings.name, error })
          }
          continue
        }
        this.circuit.released(probe)
        mutation.attempts = attempt
        mutation.failures = [...mutation.failures, this.failureOf(error, attempt)].slice(-MAX_FAILURES)
        if (error.errorClass === 'fatal' || attempt >= this.policy.maxAttempts) {
          this.deadLetter(item, error)
          return
        }
        this.stats.retried++
        this.options.observer?.retried(mutation)
        this.change.history.push({ mutationId: mutation.id, atMs: this.options.now(), event: 'failed', attempt, errorClass: error.errorClass, code: error.code, message: error.message })
        const wait = backoffMs(this.policy, attempt)
        if (wait <= IN_PROCESS_BACKOFF_MAX_MS) {
          const slept = await sleep(wait, true, { signal: this.options.stop }).catch(() => false)
          if (slept) continue
        }
        // A long backoff (or a stop during a short one) waits in the schedule instead.
        this.schedule(item, this.options.now() + wait)
        return
      }
    }
  }

  private failureOf(error: TargetError, attempt: number): Failure {
    return {
      atMs: this.options.now(),
      target: this.options.settings.name,
      errorClass: error.errorClass,
      message: cutText(error.message, MAX_FAILURE_MESSAGE_CHARS),
      attempt,
      code: error.code,
    }
  }

  private schedule(item: Item, dueAtMs: number): void {
    const { mutation } = item
    this.stats.scheduled++
    this.change.history.push({ mutationId: mutation.id, atMs: this.options.now(), event: 'scheduled', attempt: mutation.attempts })
    if (item.source === 'scheduled') {
      this.change.reschedule.push({ seq: item.seq, dueAtMs, mutation })
      this.changedKeys.push(mutation.key)
      return
    }
    this.scheduledCount.set(mutation.key, (this.scheduledCount.get(mutation.key) ?? 0) + 1)
    this.change.schedule.push({ partition: item.partition, offset: item.offset, dueAtMs, mutation })
    this.finishLog(item)
  }

  private deadLetter(item: Item, error: TargetError): void {
    const { mutation } = item
    this.stats.deadLettered++
    this.options.observer?.deadLettered(mutation)
    const atMs = this.options.now()
    this.change.deadLetters.push({ partition: item.partition, mutation, errorClass: error.errorClass, code: error.code, message: error.message, atMs })
    this.options.onEvent?.({ type: 'dead-lettered', target: this.options.settings.name, mutation, error })
    this.done(item, { mutationId: mutation.id, atMs, event: 'dead-lettered', attempt: mutation.attempts, errorClass: error.errorClass, code: error.code, message: error.message })
  }

  private done(item: Item, event: ConsumerCommit['history'][number] | undefined): void {
    if (event) this.change.history.push(event)
    if (item.source === 'scheduled') {
      this.change.unschedule.push(item.seq)
      this.changedKeys.push(item.mutation.key)
      const left = (this.scheduledCount.get(item.mutation.key) ?? 1) - 1
      if (left > 0) this.scheduledCount.set(item.mutation.key, left)
      else this.scheduledCount.delete(item.mutation.key)
    } else this.finishLog(item)
  }

  private finishLog(item: Extract<Item, { source: 'log' }>): void {
    this.progress.done(item.partition, item.offset)
    this.inFlight--
  }

  /** Gives a log mutation up without an outcome: its offset is not committed past, so it is redone. */
  private abandon(_item: Extract<Item, { source: 'log' }>): void {
    this.inFlight--
  }

  /** Flushes the target, then commits offsets and every recorded change together. */
  commit(): Promise<void> {
    if (this.committing) {
      // The commit under way may have started before the latest applies finished (the last commit of a
      // drain, say): one more runs after it, shared by everyone who asks meanwhile.
      this.nextCommit ??= this.committing
        .catch(() => undefined)
        .then(() => {
          this.nextCommit = undefined
          return this.commit()
        })
      return this.nextCommit
    }
    this.committing = this.commitNow().finally(() => (this.committing = undefined))
    return this.committing
  }

  private async commitNow(): Promise<void> {
    const change = this.change
    const keys = this.changedKeys
    this.change = emptyChange()
    this.changedKeys = []
    const offsets = this.progress.toCommit()
    const nothing = change.schedule.length + change.reschedule.length + change.unschedule.length + change.deadLetters.length + change.history.length === 0
    await this.options.target.flush?.()
    if (nothing && offsets.size === 0) return
    const { lost } = await this.options.store.commit(this.options.owner, { ...change, offsets })
    for (const [p, offset] of offsets) if (!lost.includes(p)) this.progress.committedAt(p, offset)
    for (const key of keys) this.busyKeys.delete(key)
    if (lost.length > 0) {
      // Another consumer holds these now: stop reading them; what we applied there is redone by it.
      this.owned = this.owned.filter((p) => !lost.includes(p))
      for (const p of lost) {
        this.progress.forget(p)
      }
    }
  }

  private async summary(): Promise<TargetStats> {
    const committed = await this.options.store.committed(this.owned)
    const marks = await this.options.log.marks()
    let lag = 0
    for (const p of this.owned) lag += marks[p]!.high - (committed.get(p) ?? 0)
    return { ...this.stats, partitions: [...this.owned], lag }
  }
}
