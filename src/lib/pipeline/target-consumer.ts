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
 * - Fencing: each partition is worked on under the epoch of its lease. Everything read or recorded
 *   carries that epoch; a commit names it, and the store refuses it when the lease was lost or taken
 *   again meanwhile (this consumer was frozen, say). Such a partition's in-memory state is dropped
 *   whole — position, queued work, schedule counts, uncommitted changes — and, when the lease is ours
 *   again, it starts over from the committed offset. Work still in flight for an old epoch finishes
 *   without recording anything.
 */
import { setTimeout as sleep } from 'node:timers/promises'

import type { RetryPolicy, TargetSettings } from '../config/schema.js'
import { cutText, MAX_FAILURE_MESSAGE_CHARS, MAX_FAILURES, POISON_CODE, type Failure, type Mutation } from '../envelope/envelope.js'
import { replaysOf } from '../dlq/replays.js'
import { BackendUnavailableError, type WalError } from '../errors.js'
import { isLogLocked, type ConsumerStore, type HistoryEvent, type LogBackend, type ShardRequest, type SkipEntry, type SkipList, type TxnInfo } from '../log/backend.js'
import { CircuitBreaker } from './circuit-breaker.js'
import { KeyedExecutor } from './keyed-executor.js'
import { PartitionProgress } from './partition-progress.js'
import { emptyChange, mergeChanges, partitionsOf, withoutPartitions } from './pending-change.js'
import type { RateLimiter } from './rate-limiter.js'
import { IN_PROCESS_BACKOFF_MAX_MS, backoffMs } from './retry.js'
import { TargetError, toTargetError, type Target } from '../targets/target.js'
import { formatDurationMs } from '../time.js'
import { txnOf } from '../txn/txn.js'
import type { LogRecord } from '../envelope/envelope.js'

/** Mutations read from the log and not yet done, at most (backpressure on reading). */
const MAX_IN_FLIGHT = 2000
/** Mutations read per turn: between turns, timers (commits, lease heartbeats) and I/O get their turn. */
const READ_BATCH = 1000
const SCHEDULED_BATCH = 200
/**
 * How long a consumer's write of its state waits for a lock another process holds on the embedded log
 * (a producer stopped mid-write, say) before it gives that write up for now: the consumer waits on (the
 * next commit and heartbeat try again), and a stop is never held up longer than this.
 */
export const CONSUMER_LOCK_WAIT_MS = 5_000
/** How long the commit of a stop may take once the drain timeout has already passed. */
const LAST_COMMIT_GRACE_MS = 2_000
/**
 * The executor's lane of a key's scheduled entries while a transaction's marker holds the key: they run
 * beside the marker, which may wait for them. It starts with a lone surrogate, which no key a mutation
 * can carry holds (the door refuses it; keys read back from a log are decoded UTF-8), so no key shares it.
 */
export function besideMarkerLane(key: string): string {
  return `\ud800beside-marker:${key}`
}

export interface TargetConsumerOptions {
  log: LogBackend
  store: ConsumerStore
  target: Target
  settings: TargetSettings
  /**
   * The names of the namespace's targets now, in declared order (read at each mutation: a daemon's
   * reload changes them). A mutation addressed to none of them is dead-lettered once, by the first.
   */
  namespaceTargets: () => readonly string[]
  owner: string
  shard: ShardRequest
  concurrency: number
  /** Shared with other targets (the namespace's limit) or its own (the target's, --rate). */
  limiters: readonly RateLimiter[]
  /** wal's clock: what "now" is for delays and schedules. */
  now: () => number
  untilIdle: boolean
  /**
   * With untilIdle: give up (BackendUnavailableError, exit 5, naming the target) when work is left but
   * nothing moved for this long — the target stays paused, or partitions stay held by another consumer.
   */
  idleTimeoutMs?: number
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
  /** The namespace's txnTimeoutMs: transactions without a marker for this long are aborted (at each heartbeat). */
  txnTimeoutMs?: number
}

/** Per-mutation outcomes, for metrics: apply time, and the time since the mutation was created. */
export interface TargetObserver {
  applied(mutation: Mutation, applyMs: number): void
  retried(mutation: Mutation): void
  deadLettered(mutation: Mutation): void
  /** A transaction aborted for want of its marker. */
  txnAborted?(txn: string): void
}

export type PipelineEvent =
  | { type: 'dead-lettered'; target: string; mutation: Mutation; error: TargetError }
  | { type: 'circuit-open'; target: string; error: TargetError }
  | { type: 'partitions'; target: string; partitions: number[] }
  /** The log's write lock held by another process (a stopped producer, say): commits wait; said once until one goes through. */
  | { type: 'log-locked'; target: string; error: WalError }

export interface TargetStats {
  target: string
  partitions: number[]
  applied: number
  retried: number
  scheduled: number
  deadLettered: number
  /** Passed by: marked with `wal skip`. */
  skipped: number
  circuitOpened: number
  /** Transactions applied whole, and aborted (no marker within txnTimeoutMs). */
  txnApplied: number
  txnAborted: number
  /** Mutations in owned partitions not yet committed by this target. */
  lag: number
}

/** A target's stats as a running consumer sees them now: also the applies under way and its breaker's state. */
export type LiveTargetStats = Omit<TargetStats, 'lag'> & { inFlight?: number; circuit?: 'closed' | 'open' | 'half-open' }

/** `--until-idle` gave up on a target: work was left and nothing moved for the idle timeout (exit 5). */
export class TargetStalledError extends BackendUnavailableError {
  constructor(
    readonly target: string,
    readonly idleTimeoutMs: number,
    readonly why: string,
    readonly lag?: number,
  ) {
    super(
      `target "${target}" made no progress for ${formatDurationMs(idleTimeoutMs)} (--idle-timeout) with work left: ${why}` +
        (lag === undefined ? '' : `; ${lag} mutation${lag === 1 ? '' : 's'} not applied yet`),
      {
        code: 'WAL_TARGET_UNAVAILABLE',
        details: { target, idleTimeoutMs, ...(lag === undefined ? {} : { lag }) },
        suggestions: ['nothing is lost: what was not applied stays in the log for the next consume', 'wait longer with --idle-timeout, or fix the target and run again'],
      },
    )
  }

  withLag(lag: number): TargetStalledError {
    return new TargetStalledError(this.target, this.idleTimeoutMs, this.why, lag)
  }
}

/**
 * A unit of work, with the lease epoch of its partition when it was read: stale once that changes. A
 * transaction's marker carries the transaction as read when it was dispatched (`txn`).
 */
type Item =
  | { source: 'log'; partition: number; epoch: number; offset: number; mutation: Mutation; poison?: string; txn?: { found: TxnInfo | undefined } }
  | { source: 'scheduled'; partition: number; epoch: number; seq: number; mutation: Mutation }

type LogItem = Extract<Item, { source: 'log' }>

export class TargetConsumer {
  private owned: number[] = []
  /** Partitions the shard should hold (some may still be leased to a consumer that died). */
  private wanted: number[] = []
  /** Lease epoch of each partition worked on (owned, or being given up): the fencing token of its commits. */
  private readonly epochs = new Map<number, number>()
  /** Offsets read, in flight and committed, per partition (owned or being given up). */
  private readonly progress = new PartitionProgress()
  /** Per partition, scheduled entries (committed or about to be) per key: while > 0, new mutations of the key queue behind. */
  private readonly scheduledCount = new Map<number, Map<string, number>>()
  /**
   * Keys whose scheduled entries are in flight or whose changes await commit (not fetched again
   * meanwhile), with their partition and epoch: `left` of the run dispatched are not committed yet, and
   * `blocked` once one of them went back to the schedule (the rest of the run then waits behind it).
   */
  private readonly busyKeys = new Map<string, { partition: number; epoch: number; left: number; blocked: boolean }>()
  /** Keys held by transactions' markers in the executor (given, not done), with how many times. */
  private readonly markerHolds = new Map<string, number>()
  /** Markers waiting for earlier scheduled mutations of their parts' keys (see waitForScheduledKeys). */
  private markersWaiting = 0
  /** Set when what waits behind waiting markers stops reading: they stop waiting (see dispatchLog). */
  private markersOverflow = false
  /** Resolved when a scheduled entry is done or a partition dropped: waiting markers look again. */
  private scheduledChange: { promise: Promise<void>; resolve: () => void } | undefined
  /** Aborted when --until-idle ends with markers waiting: they, and what queues behind them, are left for the next run. */
  private readonly leaveWaiting = new AbortController()
  private change = emptyChange()
  private readonly executor: KeyedExecutor
  private readonly circuit = new CircuitBreaker({ probeIntervalMs: 500, maxProbeIntervalMs: 30_000 })
  private inFlight = 0
  /** Applies under way at the target now (inFlight also counts what waits for its key, a retry, the circuit). */
  private applying = 0
  private heartbeating = false
  /** Whether the store refuses a commit whole when a partition's epoch is stale (embedded), or writes the rest (Kafka). */
  private storeFences = false
  private committing: Promise<void> | undefined
  /** A commit asked for while one was under way: it runs when that one ends. */
  private nextCommit: Promise<void> | undefined
  private failure: unknown
  /** Aborted on a hard stop, or when this target gives up (--idle-timeout). */
  private readonly giveUp = new AbortController()
  private readonly abort: AbortSignal
  /** Settles at the hard stop (the drain timeout, or giving up on an idle timeout), if it comes. */
  private readonly hardStop: Promise<void>
  /** Ends waits before an apply starts (circuit, rate limit, backoff): a stop, or giving up. */
  private readonly stopWaiting: AbortSignal
  /** When something last moved (a mutation done, a partition taken on): for --idle-timeout. */
  private lastProgressMs = Date.now()
  /** Set while the target could not flush (a full disk): what it applied is not committed yet. */
  private unflushed: TargetError | undefined
  /** The error that last paused the target, to say why it gave up. */
  private lastPause: TargetError | undefined
  /** Set while writes of the consumer state find the log locked by another process (see CONSUMER_LOCK_WAIT_MS). */
  private logLocked: WalError | undefined
  /** The namespace's skip list (where the backend keeps one), and its entries for this target, read at each heartbeat. */
  private skipList: SkipList | undefined
  private skips = new Map<string, SkipEntry>()
  private skipsRead = false
  private readonly stats: Omit<TargetStats, 'partitions' | 'lag'>
  private readonly policy: RetryPolicy

  constructor(private readonly options: TargetConsumerOptions) {
    this.executor = new KeyedExecutor(options.concurrency)
    this.abort = AbortSignal.any([options.abort, this.giveUp.signal])
    this.hardStop = new Promise((resolve) => (this.abort.aborted ? resolve() : this.abort.addEventListener('abort', () => resolve(), { once: true })))
    this.stopWaiting = AbortSignal.any([options.stop, this.giveUp.signal])
    this.policy = options.settings.retry
    this.stats = { target: options.settings.name, applied: 0, retried: 0, scheduled: 0, deadLettered: 0, skipped: 0, circuitOpened: 0, txnApplied: 0, txnAborted: 0 }
  }

  /** Runs until stopped (or idle, with untilIdle); resolves with what it did. */
  async run(): Promise<TargetStats> {
    const { stop } = this.options
    this.skipList = await this.options.log.skipList?.()
    await this.heartbeat()
    const heartbeat = setInterval(() => void this.heartbeat().catch((error) => this.fail(error)), this.options.leaseTtlMs / 3)
    const commits = setInterval(() => {
      // A commit that does not end (a pipe whose reader stopped) holds the loop, which checks this itself.
      if (this.options.untilIdle && this.committing !== undefined) this.checkStalled()
      void this.commit().catch((error) => this.fail(error))
    }, this.options.commitIntervalMs)
    try {
      while (!stop.aborted && this.failure === undefined) {
        const dispatched = (await this.dispatchScheduled()) + (await this.dispatchLog())
        if (dispatched > 0) {
          // Fast targets finish in microtasks: yield, or commits and heartbeats would wait for the backlog.
          await new Promise((resolve) => setImmediate(resolve))
          continue
        }
        if (this.options.untilIdle) {
          if (await this.idle()) break
          this.checkStalled()
          if (this.failure !== undefined) break
        }
        // Caught up with nothing in flight: commit now rather than at the next tick (lower latency).
        if (this.executor.size === 0) await this.orHardStop(this.commit())
        await sleep(this.options.pollIntervalMs, undefined, { signal: stop }).catch(() => undefined)
      }
      await this.orHardStop(this.executor.idle())
      if (this.failure instanceof TargetStalledError) {
        // Giving up is not a crash: what was applied is committed, the rest stays for the next run.
        await this.lastCommit()
        const { lag } = await this.summary()
        throw this.failure.withLag(lag)
      }
      if (this.failure !== undefined) throw this.failure
      await this.lastCommit()
      if (this.unflushed !== undefined) {
        throw new BackendUnavailableError(
          `target "${this.options.settings.name}" could not make its last applies durable (${this.unflushed.code}: ${this.unflushed.message}); they were not committed and the next consumer applies them again`,
          { code: 'WAL_TARGET_UNAVAILABLE', cause: this.unflushed, details: { target: this.options.settings.name } },
        )
      }
      return await this.summary()
    } finally {
      clearInterval(heartbeat)
      clearInterval(commits)
      await this.skipList?.close().catch(() => undefined)
      if (this.failure === undefined || this.failure instanceof TargetStalledError) await this.options.store.release(this.options.owner).catch(() => undefined)
    }
  }

  /**
   * The commit of a stop. A target that cannot flush (a pipe whose reader stopped) does not hold the
   * process past a hard stop (the drain timeout): the wait ends there, or LAST_COMMIT_GRACE_MS after
   * the call when the hard stop came before it, and nothing past the unflushed applies is committed.
   */
  private async lastCommit(): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const cut = this.abort.aborted ? new Promise<void>((resolve) => (timer = setTimeout(resolve, LAST_COMMIT_GRACE_MS))) : this.hardStop
    try {
      const committed = await this.orHardStop(this.commit().then(() => true), cut)
      if (committed !== true && this.unflushed === undefined) {
        this.unflushed = new TargetError('the drain timeout passed while it was still making them durable', { errorClass: 'infrastructure', code: 'DRAIN_TIMEOUT' })
      }
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * `work`'s result, or undefined once `stop` (the hard stop) settles first: a target that cannot flush
   * (a pipe whose reader stopped) or a commit waiting behind one does not hold the consumer past it.
   */
  private async orHardStop<T>(work: Promise<T>, stop: Promise<void> = this.hardStop): Promise<T | undefined> {
    // A failure after the hard stop changes nothing: the consumer is ending, and nothing was committed.
    work.catch(() => undefined)
    return Promise.race([work, stop.then(() => undefined)])
  }

  /** What it did so far and the partitions it owns now, read without waiting (for `wal daemon status`). */
  snapshot(): LiveTargetStats {
    return { ...this.stats, partitions: [...this.owned], inFlight: this.applying, circuit: this.circuit.state }
  }

  private fail(error: unknown): void {
    this.failure ??= error
  }

  private progressed(): void {
    this.lastProgressMs = Date.now()
  }

  /** With --until-idle: gives up when work is left and nothing moved for the idle timeout. */
  private checkStalled(): void {
    const timeoutMs = this.options.idleTimeoutMs
    if (timeoutMs === undefined || Date.now() - this.lastProgressMs < timeoutMs) return
    const name = this.options.settings.name
    const waitingFor = this.wanted.filter((p) => !this.owned.includes(p))
    const why =
      this.logLocked !== undefined
        ? `its state cannot be written: ${this.logLocked.code}: ${this.logLocked.message}`
        : this.unflushed !== undefined
        ? `it cannot make its applies durable: ${this.unflushed.code}: ${this.unflushed.message}`
        : this.circuit.state !== 'closed' && this.lastPause !== undefined
        ? `it is paused: ${this.lastPause.code}: ${this.lastPause.message}`
        : this.committing !== undefined
        ? 'it is still making its applies durable (an output nobody reads, such as a stopped pipe?)'
        : waitingFor.length > 0
          ? `partitions ${waitingFor.join(',')} stay held by another consumer`
          : 'its mutations are not getting applied'
    this.fail(new TargetStalledError(name, timeoutMs, why))
    this.giveUp.abort()
  }

  /** Nothing in flight, nothing to read, nothing scheduled that is due. */
  private async idle(): Promise<boolean> {
    // Work in flight is not idle, unless all that is left is markers waiting for scheduled entries (not
    // due yet, see below) and what queues behind them: those are left for the next run.
    if ((this.executor.size > 0 || this.inFlight > 0) && !(this.markersWaiting > 0 && this.applying === 0 && this.executor.onlyWaitingOutside)) return false
    // Partitions still leased to a consumer that stopped: not idle until their lease lapses and they are ours.
    if (this.wanted.some((p) => !this.owned.includes(p))) return false
    await this.orHardStop(this.commit())
    // Not committed (the target could not flush, or the log is locked by another process): not done.
    if (this.unflushed !== undefined || this.logLocked !== undefined || this.busyKeys.size > 0) return false
    const marks = await this.options.log.marks()
    for (const p of this.owned) {
      const position = this.progress.position(p)
      if (position >= marks[p]!.high) continue
      // Behind the high mark with nothing read: idle if only what readers never see is left there (Kafka's
      // transaction markers and aborted records).
      for await (const _record of this.options.log.read({ from: new Map([[p, position]]), until: new Map([[p, marks[p]!.high]]) })) return false
    }
    const due = await this.options.store.nextDueAtMs(this.owned)
    const idle = due === null || due > this.options.now()
    if (idle && this.markersWaiting > 0) this.leaveWaiting.abort()
    return idle
  }

  /** Claims or renews leases; takes on new partitions and lets go of those no longer ours. */
  private async heartbeat(): Promise<void> {
    // A slow claim (the log's lock busy) must not overlap the next one.
    if (this.heartbeating) return
    this.heartbeating = true
    try {
      await this.heartbeatNow()
      await this.carryOutReset()
      await this.abortExpiredTransactions()
      this.lockFreed()
    } catch (error) {
      // The log locked by another process: the leases are renewed at the next heartbeat (if they lapsed
      // meanwhile, the epochs say so then, and what was lost is dropped).
      if (!this.lockedOut(error)) throw error
    } finally {
      this.heartbeating = false
    }
  }

  /** Whether an error is the log's lock held by another process: said once, then waited through. */
  private lockedOut(error: unknown): boolean {
    if (!isLogLocked(error)) return false
    if (this.logLocked === undefined) this.options.onEvent?.({ type: 'log-locked', target: this.options.settings.name, error: error as WalError })
    this.logLocked = error as WalError
    return true
  }

  private lockFreed(): void {
    this.logLocked = undefined
  }

  /**
   * Reads the skip list again. The first read must succeed (nothing is applied without knowing what to
   * skip); a later one that fails (a broker restarting) keeps the list read before and tries again at
   * the next heartbeat, as a lease renewal would.
   */
  private async refreshSkips(): Promise<void> {
    if (!this.skipList) return
    const name = this.options.settings.name
    try {
      this.skips = new Map((await this.skipList.entries()).filter((e) => e.target === null || e.target === name).map((e) => [e.id, e]))
      this.skipsRead = true
    } catch (error) {
      if (!this.skipsRead) throw error
    }
  }

  private async heartbeatNow(): Promise<void> {
    await this.refreshSkips()
    const { owned, wanted, epochs } = await this.options.store.claim(this.options.owner, this.options.shard, this.options.leaseTtlMs)
    this.wanted = wanted
    // Backends without lease epochs (Kafka: its group generation) fence by themselves.
    this.storeFences = epochs !== undefined
    const epochOf = (p: number): number => epochs?.get(p) ?? 0
    // Held again under another epoch: we lost it in between (frozen past the lease), so whatever we had
    // in memory for it may be behind what its other owner committed. Start it over.
    for (const p of owned) {
      if (this.epochs.has(p) && this.epochs.get(p) !== epochOf(p)) this.drop(p)
    }
    const removed = this.owned.filter((p) => !owned.includes(p))
    // New to us (a partition taken back while being given up, under the same lease, keeps its state).
    const fresh = owned.filter((p) => !this.epochs.has(p))
    if (fresh.length === 0 && removed.length === 0 && owned.every((p) => this.owned.includes(p))) return
    const starts = new Map<number, { offset: number; counts: Map<string, number> }>()
    for (const p of fresh) {
      const offset = (await this.options.store.committed([p])).get(p)!
      starts.set(p, { offset, counts: await this.options.store.scheduledKeyCounts([p]) })
    }
    // Only now, with their start known, are the new partitions read from.
    // (A partition a forced reset made us drop comes back here, from the reset's offset.)
    for (const [p, start] of starts) {
      this.epochs.set(p, epochOf(p))
      this.progress.start(p, start.offset)
      this.scheduledCount.set(p, start.counts)
    }
    // Dropped meanwhile (a commit found it fenced): taken on afresh by the next heartbeat.
    this.owned = owned.filter((p) => this.epochs.has(p))
    if (fresh.length > 0) this.progressed()
    // Partitions given up are released once what was read from them is done and committed.
    if (removed.length > 0) void this.releaseWhenDone(removed).catch((error: unknown) => this.fail(error))
    this.options.onEvent?.({ type: 'partitions', target: this.options.settings.name, partitions: [...this.owned] })
  }

  /**
   * An operator's forced reset that the store has this consumer carry out (Kafka): the partitions it
   * names are dropped (nothing more of ours is committed for them), what was under way is committed,
   * then the reset's offsets; the next heartbeat takes the partitions on again from there.
   */
  private async carryOutReset(): Promise<void> {
    const { store } = this.options
    if (!store.pendingReset || !store.applyReset) return
    // Not readable now (a broker restarting): asked again at the next heartbeat.
    const reset = await store.pendingReset(this.owned).catch(() => null)
    if (reset === null) return
    for (const p of reset.offsets.keys()) this.drop(p)
    await this.commit()
    await store.applyReset(reset.id, reset.offsets)
  }

  /** Transactions whose marker did not come within txnTimeoutMs: aborted, and dead-lettered for this target. */
  private async abortExpiredTransactions(): Promise<void> {
    const { store, txnTimeoutMs } = this.options
    if (txnTimeoutMs === undefined || store.abortExpiredTransactions === undefined) return
    for (const txn of await store.abortExpiredTransactions(Date.now(), txnTimeoutMs)) {
      // Filed in the DLQ (class txn-aborted): it counts as dead-lettered too (consume's exit 8).
      this.stats.txnAborted++
      this.stats.deadLettered++
      this.progressed()
      this.options.observer?.txnAborted?.(txn.id)
    }
  }

  /** Forgets everything about a partition: its position, counts, busy keys and uncommitted changes. */
  private drop(partition: number): void {
    this.epochs.delete(partition)
    this.progress.forget(partition)
    this.scheduledCount.delete(partition)
    for (const [key, busy] of this.busyKeys) if (busy.partition === partition) this.busyKeys.delete(key)
    this.change = withoutPartitions(this.change, new Set([partition]))
    this.owned = this.owned.filter((p) => p !== partition)
    this.wakeMarkers()
  }

  private isCurrent(item: Item): boolean {
    return this.epochs.get(item.partition) === item.epoch
  }

  private async releaseWhenDone(partitions: number[]): Promise<void> {
    while (!this.options.stop.aborted && partitions.some((p) => this.progress.busy(p))) await sleep(this.options.pollIntervalMs)
    await this.commit()
    const gone = partitions.filter((p) => !this.owned.includes(p))
    for (const p of gone) if (this.epochs.has(p)) this.drop(p)
    try {
      await this.options.store.release(this.options.owner, gone)
    } catch (error) {
      // Not released now (the log locked by another process): the lease lapses by itself.
      if (!this.lockedOut(error)) throw error
    }
  }

  private async dispatchScheduled(): Promise<number> {
    if (this.owned.length === 0 || !this.anyScheduled()) return 0
    const due = await this.options.store.dueScheduled(this.owned, this.options.now(), SCHEDULED_BATCH, new Set(this.busyKeys.keys()))
    let dispatched = 0
    // A key's entries come as a run (its head, then followers in order): all of it dispatched, or its start.
    const runs = new Set<string>()
    const cut = new Set<string>()
    for (const entry of due) {
      const { key } = entry.mutation
      const epoch = this.epochs.get(entry.partition)
      const busy = this.busyKeys.get(key)
      // Dropped while we read (fenced): not ours to work on now.
      if (epoch === undefined || !this.owned.includes(entry.partition) || cut.has(key) || (busy !== undefined && (!runs.has(key) || busy.epoch !== epoch))) {
        cut.add(key)
        continue
      }
      if (busy === undefined) {
        this.busyKeys.set(key, { partition: entry.partition, epoch, left: 1, blocked: false })
        runs.add(key)
      } else busy.left++
      const item: Item = { source: 'scheduled', partition: entry.partition, epoch, seq: entry.seq, mutation: entry.mutation }
      this.executor.push(this.markerHolds.has(key) ? besideMarkerLane(key) : key, () => this.process(item))
      dispatched++
    }
    return dispatched
  }

  /**
   * Whether an owned partition has anything in the schedule for this target. Only this consumer adds to
   * a partition's schedule while it holds the lease, and scheduledCount counts those entries from the
   * store's own count when the partition was taken on: with none, there is nothing to ask the store for.
   */
  private anyScheduled(): boolean {
    for (const p of this.owned) if ((this.scheduledCount.get(p)?.size ?? 0) > 0) return true
    return false
  }

  private async dispatchLog(): Promise<number> {
    // Read a page only when all of it fits in flight: a page cut short is read again from the log next
    // turn, and with a slow target (a remote database) that re-reading would cost more than the applies.
    if (this.owned.length === 0) return 0
    if (this.inFlight > MAX_IN_FLIGHT - READ_BATCH) {
      // All that fills the room in flight waits behind markers waiting for scheduled entries: reading
      // would stop for every key, so those markers are applied now, at their place in the log (their
      // keys' scheduled entries after them), and reading goes on.
      if (this.markersWaiting > 0 && this.applying === 0 && this.executor.onlyWaitingOutside) {
        this.markersOverflow = true
        this.wakeMarkers()
      }
      return 0
    }
    let dispatched = 0
    const from = new Map(this.owned.map((p) => [p, this.progress.position(p)]))
    const epochs = new Map(this.owned.map((p) => [p, this.epochs.get(p)!]))
    const { log } = this.options
    if (log.readPage) {
      // A page at once (the embedded log): one promise per page instead of one per record.
      return this.dispatchPage(await log.readPage(from, Math.min(READ_BATCH, MAX_IN_FLIGHT - this.inFlight)), epochs)
    }
    for await (const record of log.read({ from })) {
      const item = this.readItem(record, epochs.get(record.partition)!)
      if (item !== undefined) {
        this.pushItem(item, isMarker(item) ? await this.markerKeys(item) : undefined)
        dispatched++
      }
      if (this.inFlight >= MAX_IN_FLIGHT || dispatched >= READ_BATCH || this.options.stop.aborted) break
    }
    return dispatched
  }

  /** Hands a log item to the executor: under its key, or (a transaction's marker) under every key it holds. */
  private pushItem(item: LogItem, holds: readonly string[] | undefined): void {
    if (holds === undefined) {
      this.executor.push(item.mutation.key, () => this.process(item))
      return
    }
    for (const key of holds) this.markerHolds.set(key, (this.markerHolds.get(key) ?? 0) + 1)
    this.executor.pushAll(holds, async () => {
      try {
        await this.process(item)
      } finally {
        for (const key of holds) {
          const left = this.markerHolds.get(key)! - 1
          if (left > 0) this.markerHolds.set(key, left)
          else this.markerHolds.delete(key)
        }
      }
    })
  }

  /**
   * A marker whose parts' keys (for this target) have earlier mutations waiting in the schedule (delayed,
   * or backing off) waits until they are done: they run beside it (dispatchScheduled), so each part keeps
   * its place in its key's order. Meanwhile the marker holds its keys (later mutations of them wait
   * behind it) and its offset is not committed past. False: it is left for the next consumer (a stop,
   * or --until-idle ending while it waits).
   */
  private async waitForScheduledKeys(item: LogItem): Promise<boolean> {
    const name = this.options.settings.name
    const keys = new Set<string>()
    for (const { record } of item.txn?.found?.parts ?? []) if (record.target === null || record.target === name) keys.add(record.key)
    const scheduled = (): boolean => {
      for (const counts of this.scheduledCount.values()) for (const key of keys) if ((counts.get(key) ?? 0) > 0) return true
      return false
    }
    if (keys.size === 0 || !scheduled()) return true
    const leave = AbortSignal.any([this.stopWaiting, this.leaveWaiting.signal])
    const left = new Promise<void>((resolve) => leave.addEventListener('abort', () => resolve(), { once: true }))
    this.markersWaiting++
    try {
      while (scheduled() && !leave.aborted && !this.markersOverflow && this.isCurrent(item)) {
        if (this.scheduledChange === undefined) {
          let resolve!: () => void
          const promise = new Promise<void>((r) => (resolve = r))
          this.scheduledChange = { promise, resolve }
        }
        await this.executor.waitOutside(Promise.race([this.scheduledChange.promise, left]))
      }
      return !leave.aborted
    } finally {
      if (--this.markersWaiting === 0) this.markersOverflow = false
    }
  }

  private wakeMarkers(): void {
    const change = this.scheduledChange
    this.scheduledChange = undefined
    change?.resolve()
  }

  /**
   * The keys a transaction's marker holds while it applies: its own and those of its parts for this
   * target. Mutations of those keys read before the marker are applied before the transaction, those
   * read after it wait for it, as the marker's place in the log says. The transaction read here is the
   * one the marker applies. Unreadable now: its own key only (the apply reads it again).
   */
  private async markerKeys(item: LogItem): Promise<string[]> {
    const keys = [item.mutation.key]
    try {
      const found = await this.options.log.transaction?.(txnOf(item.mutation)!.id, item.mutation)
      item.txn = { found }
      const name = this.options.settings.name
      for (const { record } of found?.parts ?? []) if (record.target === null || record.target === name) keys.push(record.key)
    } catch {
      // Read again when it is applied.
    }
    return keys
  }

  /** A record read under `epoch`, now in flight; undefined when its partition changed hands meanwhile. */
  private readItem(record: LogRecord, epoch: number): LogItem | undefined {
    // Dropped or started over while this page was read: the rest of the page is not ours.
    if (this.epochs.get(record.partition) !== epoch) return undefined
    this.progress.read(record.partition, record.offset)
    this.inFlight++
    const { partition, offset } = record
    const mutation = mutationOf(record)
    return record.poison ? { source: 'log', partition, epoch, offset, mutation, poison: record.poison.error } : { source: 'log', partition, epoch, offset, mutation }
  }

  /**
   * Hands on a page of records read under `epochs`. Where the target takes batches, the mutations of the
   * keys that have nothing to wait for (every one of their records in the page is ready to apply now,
   * and none of their mutations is in the executor) are applied together, in page order, in one call;
   * the rest go through the executor one at a time. The two sets of keys are apart, so each key keeps
   * its order either way.
   */
  private async dispatchPage(records: readonly LogRecord[], epochs: ReadonlyMap<number, number>): Promise<number> {
    const items: LogItem[] = []
    for (const record of records) {
      const item = this.readItem(record, epochs.get(record.partition)!)
      if (item !== undefined) items.push(item)
    }
    // Transactions' markers hold their parts' keys (see markerKeys).
    let holds: Map<LogItem, string[]> | undefined
    for (const item of items) if (isMarker(item)) (holds ??= new Map()).set(item, await this.markerKeys(item))
    if (!this.batching()) {
      for (const item of items) this.pushItem(item, holds?.get(item))
      return items.length
    }
    const now = this.options.now()
    const waiting = new Set<string>()
    for (const item of items) if (!this.readyNow(item, now) || this.executor.has(item.mutation.key)) waiting.add(item.mutation.key)
    if (holds !== undefined) for (const keys of holds.values()) for (const key of keys) waiting.add(key)
    const ready: LogItem[] = []
    for (const item of items) {
      if (waiting.has(item.mutation.key)) this.pushItem(item, holds?.get(item))
      // Its partition lost while a marker's transaction was read: the new owner applies it.
      else if (!this.isCurrent(item)) this.abandon(item)
      else ready.push(item)
    }
    if (ready.length > 0) await this.applyReady(ready)
    return items.length
  }

  /** Whether pages are applied in batches now: the target takes them, nothing paces applies, nothing is paused. */
  private batching(): boolean {
    return this.options.target.applyBatch !== undefined && this.options.limiters.length === 0 && this.circuit.state === 'closed' && !this.options.stop.aborted
  }

  /** A log item that process() would apply at once: decodable, no transaction, for this target, not skipped, not delayed, nothing of its key scheduled. */
  private readyNow(item: LogItem, now: number): boolean {
    const { mutation } = item
    if (item.poison !== undefined || txnOf(mutation) !== undefined) return false
    if (mutation.target !== null && mutation.target !== this.options.settings.name) return false
    if (this.skips.has(mutation.id)) return false
    if ((this.scheduledCount.get(item.partition)?.get(mutation.key) ?? 0) > 0) return false
    const notBeforeMs = this.options.target.deliveryTimeMs ? this.options.target.deliveryTimeMs(mutation) : mutation.notBeforeMs
    return notBeforeMs === null || notBeforeMs <= now
  }

  /**
   * Applies ready log items in one call to the target. When the batch fails (the target applied none of
   * it), each item goes through the executor on its own: the bad one retries, backs off or is
   * dead-lettered alone, and the others are applied once. Offsets are committed past them only after the
   * target flushed, as for any apply.
   */
  private async applyReady(items: readonly LogItem[]): Promise<void> {
    const mutations = items.map((item) => item.mutation)
    const startedMs = performance.now()
    let failed = false
    this.applying += items.length
    try {
      await this.options.target.applyBatch!(mutations, { signal: this.abort })
    } catch {
      failed = true
    } finally {
      this.applying -= items.length
    }
    if (this.abort.aborted) {
      // A hard stop: left as they were (not committed past), for the next consumer.
      for (const item of items) this.abandon(item)
      return
    }
    if (failed) {
      for (const item of items) this.executor.push(item.mutation.key, () => this.process(item))
      return
    }
    const applyMs = performance.now() - startedMs
    const { observer } = this.options
    this.progressed()
    for (const item of items) {
      const { mutation } = item
      const attempt = mutation.attempts + 1
      mutation.attempts = attempt
      this.stats.applied++
      observer?.applied(mutation, applyMs)
      // As in applyWithRetries: a first-try apply needs no history row, the committed offset says it
      // (done() without an event, spelled out: this runs once per mutation of every page).
      if (attempt === 1) this.finishLog(item)
      else this.done(item, { mutationId: mutation.id, atMs: this.options.now(), event: 'applied', attempt })
    }
  }

  /** One mutation, from gate to done. Never throws: every outcome is recorded. */
  private async process(item: Item): Promise<void> {
    const { mutation } = item
    const now = this.options.now()
    if (!this.isCurrent(item)) {
      // Its partition was lost or started over since it was read: the new owner (or run) redoes it.
      if (item.source === 'log') this.abandon(item)
      return
    }
    if (this.options.stop.aborted || this.leaveWaiting.signal.aborted) {
      // Stopping (or --until-idle leaving waiting markers): only what already started is finished; this one is left for the next consumer.
      if (item.source === 'log') this.abandon(item)
      return
    }
    if (item.source === 'scheduled') {
      const busy = this.busyKeys.get(mutation.key)
      if (busy?.blocked === true && busy.epoch === item.epoch) {
        // An entry of its run before it went back to the schedule: it stays where it is, behind it.
        if (--busy.left <= 0) this.busyKeys.delete(mutation.key)
        return
      }
    }
    try {
      if (item.source === 'log' && item.poison !== undefined) {
        // Cannot be decoded: never applied, dead-lettered as read, and the partition moves on.
        this.deadLetter(item, new TargetError(item.poison, { errorClass: 'poison', code: POISON_CODE }))
        return
      }
      const txn = txnOf(mutation)
      if (txn !== undefined) {
        // A transaction's part waits for its marker, which applies all of them in order.
        if (!txn.marker) this.done(item, undefined)
        else if (item.source === 'log' && !(await this.waitForScheduledKeys(item))) this.abandon(item)
        else await this.applyTransaction(item, txn.id)
        return
      }
      if (mutation.target !== null && mutation.target !== this.options.settings.name) {
        const names = this.options.namespaceTargets()
        if (!names.includes(mutation.target)) {
          // Addressed to a target the namespace no longer has: dead-lettered with why, never dropped —
          // once, by the namespace's first target; the others pass it by.
          if (names[0] === this.options.settings.name) {
            this.deadLetter(item, new TargetError(`namespace "${mutation.namespace}" has no target "${mutation.target}"`, { errorClass: 'fatal', code: 'WAL_TARGET_UNKNOWN' }))
            return
          }
        }
        // Addressed to another target of the namespace: nothing to do here.
        if (item.source === 'log') this.finishLog(item)
        else this.done(item, { mutationId: mutation.id, atMs: now, event: 'applied', attempt: mutation.attempts })
        return
      }
      const skipped = this.skips.get(mutation.id)
      if (skipped !== undefined) {
        // An operator said not to apply it (wal skip): passed by, with a step in its history saying so.
        this.stats.skipped++
        this.done(item, { mutationId: mutation.id, atMs: now, event: 'skipped', attempt: mutation.attempts, ...(skipped.reason === null ? {} : { message: skipped.reason }) })
        return
      }
      if (item.source === 'log' && (this.scheduledCount.get(item.partition)?.get(mutation.key) ?? 0) > 0) {
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
      if (!this.options.stop.aborted && !this.abort.aborted) this.fail(error)
      if (item.source === 'log') this.abandon(item)
    }
  }

  private async applyWithRetries(item: Item): Promise<void> {
    const { mutation } = item
    for (;;) {
      // Not started yet: a stop ends the wait at once (nothing is in flight for it).
      // Closed (nearly always): no wait, and no promise to await per mutation.
      const probe = this.circuit.state === 'closed' ? false : await this.circuit.allow(this.stopWaiting)
      try {
        for (const limiter of this.options.limiters) await limiter.take(this.stopWaiting)
      } catch (error) {
        this.circuit.released(probe)
        throw error
      }
      if (!this.isCurrent(item)) {
        this.circuit.released(probe)
        if (item.source === 'log') this.abandon(item)
        return
      }
      const attempt = mutation.attempts + 1
      const startedMs = performance.now()
      try {
        this.applying++
        try {
          await this.options.target.apply(mutation, { attempt, signal: this.abort })
        } finally {
          this.applying--
        }
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
        if (this.abort.aborted) {
          this.circuit.released(probe)
          if (item.source === 'log') this.abandon(item)
          return
        }
        const error = toTargetError(thrown)
        if (error.errorClass === 'infrastructure') {
          this.lastPause = error
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
        if (this.isCurrent(item)) {
          this.recordHistory(item, { mutationId: mutation.id, atMs: this.options.now(), event: 'failed', attempt, errorClass: error.errorClass, code: error.code, message: error.message })
        }
        const wait = backoffMs(this.policy, attempt)
        if (wait <= IN_PROCESS_BACKOFF_MAX_MS) {
          const slept = await sleep(wait, true, { signal: this.stopWaiting }).catch(() => false)
          if (slept) continue
        }
        // A long backoff (or a stop during a short one) waits in the schedule instead.
        this.schedule(item, this.options.now() + wait)
        return
      }
    }
  }

  /**
   * A transaction's marker: applies its parts in sequence order, from the one after the last applied
   * here. How far it got is committed with each commit (after the target flushed), so a consumer that
   * dies mid-transaction leaves the next one to resume after the last part it made durable.
   */
  private async applyTransaction(item: Item, txnId: string): Promise<void> {
    const { log, store } = this.options
    // Read when its marker was dispatched (see markerKeys), or now.
    const found = item.source === 'log' && item.txn !== undefined ? item.txn.found : await log.transaction?.(txnId, item.mutation)
    const missing =
      found === undefined ? 'the log holds none of its parts' : found.parts.length < found.partCount ? `${found.partCount - found.parts.length} of its ${found.partCount} parts are missing from the log` : undefined
    if (found === undefined || missing !== undefined) {
      this.deadLetter(item, new TargetError(`transaction ${JSON.stringify(txnId)} cannot be applied: ${missing}`, { errorClass: 'poison', code: POISON_CODE }))
      return
    }
    let applied = (await store.txnProgress?.(txnId))?.appliedSeq ?? -1
    // `wal skip` of the marker passes every part by; of a part, that part alone.
    const skipAll = this.skips.get(item.mutation.id)
    for (const { seq, record } of found.parts) {
      if (seq <= applied) continue
      if (!this.isCurrent(item)) return this.abandonItem(item)
      const part = mutationOf(record)
      const skipped = skipAll ?? this.skips.get(part.id)
      if (record.poison !== undefined) this.deadLetterPart(item, part, new TargetError(record.poison.error, { errorClass: 'poison', code: POISON_CODE }))
      else if (part.target === null || part.target === this.options.settings.name) {
        if (skipped !== undefined) {
          this.stats.skipped++
          this.recordHistory(item, { mutationId: part.id, atMs: this.options.now(), event: 'skipped', attempt: part.attempts, ...(skipped.reason === null ? {} : { message: skipped.reason }) })
        } else if ((await this.applyPart(item, part)) === 'lost') return this.abandonItem(item)
      }
      applied = seq
      // Committed with the next commit (the target flushed first), like offsets.
      this.change.txnProgress.push({ partition: item.partition, txn: txnId, appliedSeq: seq, done: false })
    }
    this.change.txnProgress.push({ partition: item.partition, txn: txnId, appliedSeq: applied, done: true })
    this.stats.txnApplied++
    this.done(item, { mutationId: item.mutation.id, atMs: this.options.now(), event: skipAll === undefined ? 'applied' : 'skipped', attempt: 1 })
  }

  private abandonItem(item: Item): void {
    if (item.source === 'log') this.abandon(item)
  }

  /** One part of a transaction, with retries; a fatal error or spent attempts dead-letter the part alone. */
  private async applyPart(item: Item, part: Mutation): Promise<'applied' | 'dead-lettered' | 'lost'> {
    for (let attempt = part.attempts + 1; ; ) {
      // Closed (nearly always): no wait, and no promise to await per mutation.
      const probe = this.circuit.state === 'closed' ? false : await this.circuit.allow(this.stopWaiting)
      try {
        for (const limiter of this.options.limiters) await limiter.take(this.stopWaiting)
      } catch (error) {
        this.circuit.released(probe)
        throw error
      }
      if (!this.isCurrent(item)) {
        this.circuit.released(probe)
        return 'lost'
      }
      const startedMs = performance.now()
      try {
        await this.options.target.apply(part, { attempt, signal: this.abort })
        this.circuit.succeeded(probe)
        part.attempts = attempt
        this.stats.applied++
        this.options.observer?.applied(part, performance.now() - startedMs)
        return 'applied'
      } catch (thrown) {
        if (this.abort.aborted) {
          this.circuit.released(probe)
          return 'lost'
        }
        const error = toTargetError(thrown)
        if (error.errorClass === 'infrastructure') {
          this.lastPause = error
          if (this.circuit.state === 'closed') this.options.onEvent?.({ type: 'circuit-open', target: this.options.settings.name, error })
          this.circuit.failed(probe)
          continue
        }
        this.circuit.released(probe)
        part.attempts = attempt
        part.failures = [...part.failures, this.failureOf(error, attempt)].slice(-MAX_FAILURES)
        if (error.errorClass === 'fatal' || attempt >= this.policy.maxAttempts) {
          this.deadLetterPart(item, part, error)
          return 'dead-lettered'
        }
        this.stats.retried++
        this.options.observer?.retried(part)
        this.recordHistory({ ...item, mutation: part }, { mutationId: part.id, atMs: this.options.now(), event: 'failed', attempt, errorClass: error.errorClass, code: error.code, message: error.message })
        // The transaction keeps its place: the marker waits here (a stop ends the wait, and the next consumer resumes).
        await sleep(backoffMs(this.policy, attempt), undefined, { signal: this.stopWaiting })
        attempt++
      }
    }
  }

  private deadLetterPart(item: Item, part: Mutation, error: TargetError): void {
    this.stats.deadLettered++
    this.options.observer?.deadLettered(part)
    const atMs = this.options.now()
    this.change.deadLetters.push({ partition: item.partition, mutation: part, errorClass: error.errorClass, code: error.code, message: error.message, atMs })
    this.options.onEvent?.({ type: 'dead-lettered', target: this.options.settings.name, mutation: part, error })
    this.recordHistory({ ...item, mutation: part }, { mutationId: part.id, atMs, event: 'dead-lettered', attempt: part.attempts, errorClass: error.errorClass, code: error.code, message: error.message })
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
    this.progressed()
    // Its partition was lost meanwhile: the new owner decides (a log item is redone from its offset).
    if (!this.isCurrent(item)) return this.finishLog(item)
    this.recordHistory(item, { mutationId: mutation.id, atMs: this.options.now(), event: 'scheduled', attempt: mutation.attempts })
    if (item.source === 'scheduled') {
      this.change.reschedule.push({ partition: item.partition, seq: item.seq, dueAtMs, mutation })
      this.change.keys.push({ key: mutation.key, partition: item.partition, epoch: item.epoch })
      // The rest of its run (dispatched after it) waits behind it.
      const busy = this.busyKeys.get(mutation.key)
      if (busy?.epoch === item.epoch) busy.blocked = true
      return
    }
    const counts = this.scheduledCount.get(item.partition)!
    counts.set(mutation.key, (counts.get(mutation.key) ?? 0) + 1)
    this.change.schedule.push({ partition: item.partition, offset: item.offset, dueAtMs, mutation })
    this.finishLog(item)
  }

  private deadLetter(item: Item, error: TargetError): void {
    const { mutation } = item
    // Counted (stats, metrics) once the commit that holds the DLQ entry is durable: see commitNow.
    const atMs = this.options.now()
    if (this.isCurrent(item)) {
      this.change.deadLetters.push({ partition: item.partition, mutation, errorClass: error.errorClass, code: error.code, message: error.message, atMs })
      this.options.onEvent?.({ type: 'dead-lettered', target: this.options.settings.name, mutation, error })
    }
    this.done(item, { mutationId: mutation.id, atMs, event: 'dead-lettered', attempt: mutation.attempts, errorClass: error.errorClass, code: error.code, message: error.message })
  }

  /** A step in the mutation's story, for `wal explain`: with which copy (delivery) of it this happened. */
  private recordHistory(item: Item, event: HistoryEvent): void {
    this.change.history.push({ partition: item.partition, event: { ...event, delivery: replaysOf(item.mutation) } })
  }

  private done(item: Item, event: HistoryEvent | undefined): void {
    this.progressed()
    if (!this.isCurrent(item)) return this.finishLog(item)
    if (event) this.recordHistory(item, event)
    if (item.source === 'scheduled') {
      this.change.unschedule.push({ seq: item.seq, partition: item.partition })
      this.change.keys.push({ key: item.mutation.key, partition: item.partition, epoch: item.epoch })
      const counts = this.scheduledCount.get(item.partition)
      const left = (counts?.get(item.mutation.key) ?? 1) - 1
      if (left > 0) counts?.set(item.mutation.key, left)
      else counts?.delete(item.mutation.key)
      if (this.markersWaiting > 0) this.wakeMarkers()
    } else this.finishLog(item)
  }

  /** A log item is done (or, from a lost partition, given up): it no longer counts as in flight. */
  private finishLog(item: Item): void {
    if (item.source !== 'log') return
    // A stale item's offset may have been read again under the new epoch: leave that one's tracking alone.
    if (this.isCurrent(item)) this.progress.done(item.partition, item.offset)
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
    let change = this.change
    this.change = emptyChange()
    const offsets = this.progress.toCommit()
    const epochs = new Map<number, number>()
    for (const p of partitionsOf(change, offsets)) epochs.set(p, this.epochs.get(p)!)
    if (!(await this.flushTarget())) {
      // Not durable at the target: nothing is committed; the change waits for the next flush.
      this.change = mergeChanges(change, this.change)
      return
    }
    if (epochs.size === 0) return
    for (;;) {
      // A partition dropped while the target flushed: its part of the change is void.
      for (const [p, epoch] of epochs) {
        if (this.epochs.get(p) === epoch) continue
        epochs.delete(p)
        offsets.delete(p)
        change = withoutPartitions(change, new Set([p]))
      }
      if (epochs.size === 0) return
      let lost: number[]
      try {
        ;({ lost } = await this.options.store.commit(this.options.owner, {
        epochs,
        offsets,
        schedule: change.schedule,
        reschedule: change.reschedule.map(({ seq, dueAtMs, mutation }) => ({ seq, dueAtMs, mutation })),
        unschedule: change.unschedule.map((u) => u.seq),
        deadLetters: change.deadLetters,
        history: change.history.map((h) => h.event),
        txnProgress: change.txnProgress.map(({ txn, appliedSeq, done }) => ({ txn, appliedSeq, done })),
        }))
      } catch (error) {
        if (!this.lockedOut(error)) throw error
        // Nothing was written: the change waits for the next commit, and no offset moves past it.
        this.change = mergeChanges(change, this.change)
        return
      }
      this.lockFreed()
      if (lost.length === 0) break
      // Another consumer holds these now (or held them since): nothing of ours was written; forget them.
      // What we applied there is redone by whoever holds them, from the committed offset.
      const fenced = new Set(lost)
      for (const p of lost) {
        if (this.epochs.get(p) === epochs.get(p)) this.drop(p)
        epochs.delete(p)
        offsets.delete(p)
      }
      change = withoutPartitions(change, fenced)
      // A store without epochs wrote the rest already: committing it again would write it twice.
      if (epochs.size === 0 || !this.storeFences) break
    }
    for (const [p, offset] of offsets) if (this.epochs.get(p) === epochs.get(p)) this.progress.committedAt(p, offset)
    // Dead letters count once written: one of a partition lost meanwhile was rolled back with it.
    for (const entry of change.deadLetters) {
      if (!epochs.has(entry.partition)) continue
      this.stats.deadLettered++
      this.options.observer?.deadLettered(entry.mutation)
    }
    for (const { key, epoch } of change.keys) {
      const busy = this.busyKeys.get(key)
      if (busy?.epoch === epoch && --busy.left <= 0) this.busyKeys.delete(key)
    }
  }

  /**
   * Makes the target's applies durable. An infrastructure failure (a full disk) pauses the target
   * instead of ending the consumer: the target keeps what it could not flush and the next commit tries
   * again. Any other failure ends the consumer (the target cannot say what it kept).
   */
  private async flushTarget(): Promise<boolean> {
    try {
      await this.options.target.flush?.()
      this.unflushed = undefined
      return true
    } catch (thrown) {
      const error = toTargetError(thrown)
      if (error.errorClass !== 'infrastructure') {
        throw new BackendUnavailableError(
          `target "${this.options.settings.name}" could not make its applies durable (${error.code}: ${error.message}); nothing was committed past them, and the next consumer applies them again`,
          { code: 'WAL_TARGET_UNAVAILABLE', cause: thrown, details: { target: this.options.settings.name } },
        )
      }
      this.unflushed = error
      this.lastPause = error
      if (this.circuit.state === 'closed') {
        this.circuit.failed(false)
        this.stats.circuitOpened++
        this.options.onEvent?.({ type: 'circuit-open', target: this.options.settings.name, error })
      }
      return false
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

/** A transaction's completion marker that can be applied (not poison). */
function isMarker(item: LogItem): boolean {
  return item.poison === undefined && txnOf(item.mutation)?.marker === true
}

/** A record read from the log as the mutation it holds (its position left out; spelled out, not a rest spread: it runs once per mutation). */
function mutationOf(record: LogRecord): Mutation {
  return {
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
}
