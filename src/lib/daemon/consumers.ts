/**
 * The daemon's consumers: one TargetConsumer per namespace × target (the pipeline of `wal consume`), or
 * one SqsConsumer per SQS namespace for all its targets (sqs-consumer.ts), started, stopped (drained)
 * and restarted as reloads ask, and restarted with backoff when one fails.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

import type { Clock } from '../clock.js'
import type { NamespaceSettings, ResolvedConfig, TargetSettings } from '../config/schema.js'
import { parseShard } from '../consume/consume.js'
import { toWalError } from '../errors.js'
import type { LogBackend } from '../log/backend.js'
import { openLog } from '../log/open.js'
import { RateLimiter } from '../pipeline/rate-limiter.js'
import { CONSUMER_LOCK_WAIT_MS, TargetConsumer, type PipelineEvent, type TargetObserver, type LiveTargetStats, type TargetStats } from '../pipeline/target-consumer.js'
import { openTarget } from '../targets/open.js'
import type { Logger } from './logger.js'
import type { DaemonMetrics, PartitionLag } from './metrics.js'
import { diffConsumers, logFingerprint, type ConsumerPlanDiff, type ConsumerSpec } from './plan.js'

const RESTART_BACKOFF_MS = 1000
const MAX_RESTART_BACKOFF_MS = 30_000

/** One open log per namespace, shared by the HTTP API and the consumers. */
export class LogPool {
  private readonly logs = new Map<string, { fingerprint: string; log: Promise<LogBackend> }>()
  /** Logs replaced by a reload: closed at shutdown, since a request or consumer may still use them. */
  private readonly retired: Array<Promise<LogBackend>> = []

  constructor(private readonly config: () => ResolvedConfig) {}

  get(settings: NamespaceSettings): Promise<LogBackend> {
    const fingerprint = logFingerprint(settings)
    const open = this.logs.get(settings.name)
    if (open && open.fingerprint === fingerprint) return open.log
    if (open) this.retired.push(open.log)
    const log = openLog(this.config(), settings, { create: true })
    log.catch(() => {
      if (this.logs.get(settings.name)?.log === log) this.logs.delete(settings.name)
    })
    this.logs.set(settings.name, { fingerprint, log })
    return log
  }

  async close(): Promise<void> {
    const all = [...this.retired, ...[...this.logs.values()].map((l) => l.log)]
    this.logs.clear()
    for (const log of all) await log.then((l) => l.close()).catch(() => undefined)
  }
}

export type ConsumerState = 'starting' | 'running' | 'draining' | 'failed' | 'stopped'

/** What `wal daemon status` shows of one consumer. */
export interface ConsumerStatus {
  namespace: string
  target: string
  type: string
  shard: string
  state: ConsumerState
  partitions: number[]
  applied: number
  retried: number
  scheduled: number
  deadLettered: number
  circuitOpened: number
  /** Applies under way at the target now; null when the consumer does not say (SQS). */
  inFlight: number | null
  /** Its circuit breaker now: closed, open (target paused) or half-open (a probe is out); null when not known. */
  circuit: 'closed' | 'open' | 'half-open' | null
  /** Mutations in its partitions not committed yet. */
  lag: number
  /** Entries now waiting in the schedule, and in the DLQ, for this target (all partitions). */
  waiting: number
  dlqDepth: number
  startedAt: string
  restarts: number
  lastError: string | null
}

type Totals = Pick<TargetStats, 'applied' | 'retried' | 'scheduled' | 'deadLettered' | 'circuitOpened'>
const TOTALS = ['applied', 'retried', 'scheduled', 'deadLettered', 'circuitOpened'] as const

/** One run of a consumer, from its start to its end or failure: what the set needs of either kind. */
export interface ConsumerRun {
  run(): Promise<unknown>
  /** Per target: what this run did so far, and the partitions (shard queues) it owns now. */
  snapshot(): LiveTargetStats[]
  /** Per target and owned partition: mutations not done yet, read now. */
  lag(): Promise<PartitionLag[]>
  /** Per target: entries waiting in the schedule (SQS: delayed in the queues), and in the DLQ. */
  counts(): Promise<Map<string, { scheduled: number; deadLetters: number }>>
  /** Closes what the run opened (not the shared log). */
  close(): Promise<void>
}

/** What a run is started with. */
export interface ConsumerRunContext {
  spec: ConsumerSpec
  log: LogBackend
  owner: string
  now: Clock
  stop: AbortSignal
  abort: AbortSignal
  /** The rate limiters of a target: the namespace's (shared by its targets) and its own. */
  limiters(target: TargetSettings): RateLimiter[]
  /** The names of the namespace's targets in the config now (a reload changes them). */
  namespaceTargets(): readonly string[]
  observer(target: string): TargetObserver
  onEvent(event: PipelineEvent): void
  /** What the consumer says outside the pipeline's events (SQS: the endpoint unreachable, and back). */
  onWarning(message: string): void
}

/** The offset pipeline of one target (every backend but SQS). */
async function startTargetRun(ctx: ConsumerRunContext): Promise<ConsumerRun> {
  const { spec, log } = ctx
  const settings = spec.targets[0]!
  const shard = parseShard(spec.shard === 'auto' ? 'auto' : spec.shard, log.partitions)
  const store = await log.consumerStore(settings.name, { lockWaitMs: CONSUMER_LOCK_WAIT_MS })
  const target = await openTarget(settings, { concurrency: spec.concurrency }).catch(async (error: unknown) => {
    await store.close().catch(() => undefined)
    throw error
  })
  const consumer = new TargetConsumer({
    log,
    store,
    target,
    settings,
    namespaceTargets: ctx.namespaceTargets,
    owner: ctx.owner,
    shard,
    concurrency: spec.concurrency,
    limiters: ctx.limiters(settings),
    now: ctx.now,
    untilIdle: false,
    stop: ctx.stop,
    abort: ctx.abort,
    leaseTtlMs: spec.leaseTtlMs,
    commitIntervalMs: 50,
    pollIntervalMs: 20,
    onEvent: ctx.onEvent,
    observer: ctx.observer(settings.name),
    txnTimeoutMs: spec.namespace.txnTimeoutMs,
  })
  return {
    run: () => consumer.run(),
    snapshot: () => [consumer.snapshot()],
    async lag() {
      const partitions = consumer.snapshot().partitions
      if (partitions.length === 0) return []
      const [marks, committed] = await Promise.all([log.marks(), store.committed(partitions)])
      return partitions.map((p) => ({ namespace: spec.namespace.name, target: settings.name, partition: p, lag: Math.max(0, marks[p]!.high - (committed.get(p) ?? 0)) }))
    },
    counts: async () => new Map([[settings.name, await store.counts()]]),
    async close() {
      await target.close().catch(() => undefined)
      await store.close().catch(() => undefined)
    },
  }
}

class RunningConsumer {
  state: ConsumerState = 'starting'
  readonly startedAt = new Date()
  restarts = 0
  lastError: string | null = null
  current: ConsumerRun | undefined
  /** Per target: what earlier runs (before a restart) did. */
  readonly totals = new Map<string, Totals>()
  readonly stopController = new AbortController()
  readonly abortController = new AbortController()
  done: Promise<void> = Promise.resolve()

  constructor(readonly spec: ConsumerSpec) {}

  get fingerprint(): string {
    return this.spec.fingerprint
  }
}

export interface ConsumerSetOptions {
  logs: LogPool
  logger: Logger
  metrics: DaemonMetrics
  now: Clock
}

export class ConsumerSet {
  private readonly running = new Map<string, RunningConsumer>()
  /** A namespace's rate limit is shared by its targets. */
  private readonly namespaceLimiters = new Map<string, { perSec: number; limiter: RateLimiter }>()
  /** Per namespace, its target names in the plan applied last. */
  private readonly targetNames = new Map<string, readonly string[]>()
  private readonly owner = `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`

  constructor(private readonly options: ConsumerSetOptions) {}

  /** Brings the running consumers in line with the plan; resolves once removed and changed ones drained. */
  async apply(wanted: ReadonlyMap<string, ConsumerSpec>, drainTimeoutMs: number): Promise<ConsumerPlanDiff> {
    const diff = diffConsumers(this.running, wanted)
    this.targetNames.clear()
    for (const spec of wanted.values()) this.targetNames.set(spec.namespace.name, spec.namespace.targets.map((t) => t.name))
    const stopping = [...diff.removed, ...diff.changed.map((s) => s.key)].map((key) => this.stop(key, drainTimeoutMs))
    await Promise.all(stopping)
    for (const spec of [...diff.added, ...diff.changed]) this.start(spec, diff.changed.includes(spec))
    return diff
  }

  /** Drains every consumer (within the deadline, then abandons what is left: it is redone later). */
  async stopAll(drainTimeoutMs: number): Promise<void> {
    await Promise.all([...this.running.keys()].map((key) => this.stop(key, drainTimeoutMs)))
  }

  get size(): number {
    return this.running.size
  }

  /** Whether every consumer has opened its target and is running. */
  allRunning(): boolean {
    return [...this.running.values()].every((c) => c.state === 'running')
  }

  private start(spec: ConsumerSpec, restarted: boolean): void {
    const running = new RunningConsumer(spec)
    this.running.set(spec.key, running)
    running.done = this.loop(running)
    this.options.logger.info({ event: restarted ? 'consumer-restarted' : 'consumer-started', ...fieldsOf(spec) }, `${restarted ? 'restarting' : 'starting'} consumer ${spec.key}`)
  }

  private async stop(key: string, drainTimeoutMs: number): Promise<void> {
    const running = this.running.get(key)
    if (!running) return
    const { spec } = running
    const startedMs = Date.now()
    running.state = 'draining'
    running.stopController.abort()
    const timer = setTimeout(() => running.abortController.abort(), drainTimeoutMs)
    try {
      await running.done
    } finally {
      clearTimeout(timer)
    }
    this.running.delete(key)
    const drained = !running.abortController.signal.aborted
    this.options.logger[drained ? 'info' : 'warn'](
      { event: 'consumer-stopped', ...fieldsOf(spec), drained, tookMs: Date.now() - startedMs },
      drained ? `consumer ${key} drained and stopped` : `consumer ${key} did not drain within ${drainTimeoutMs} ms; what it had not committed is redone by the next consumer`,
    )
  }

  private limiters(namespace: NamespaceSettings, target: TargetSettings): RateLimiter[] {
    const own = target.ratePerSec === null ? [] : [new RateLimiter(target.ratePerSec)]
    if (namespace.ratePerSec === null) return own
    let shared = this.namespaceLimiters.get(namespace.name)
    if (!shared || shared.perSec !== namespace.ratePerSec) {
      shared = { perSec: namespace.ratePerSec, limiter: new RateLimiter(namespace.ratePerSec) }
      this.namespaceLimiters.set(namespace.name, shared)
    }
    return [shared.limiter, ...own]
  }

  /** Runs the consumer until stopped; a failure is logged and the consumer started again after a backoff. */
  private async loop(running: RunningConsumer): Promise<void> {
    const { spec } = running
    const { logger, metrics } = this.options
    const stop = running.stopController.signal
    const fields = fieldsOf(spec)
    let backoffMs = RESTART_BACKOFF_MS
    while (!stop.aborted) {
      try {
        const ctx: ConsumerRunContext = {
          spec,
          log: await this.options.logs.get(spec.namespace),
          owner: this.owner,
          now: this.options.now,
          stop,
          abort: running.abortController.signal,
          limiters: (target) => this.limiters(spec.namespace, target),
          namespaceTargets: () => this.targetNames.get(spec.namespace.name) ?? spec.namespace.targets.map((t) => t.name),
          observer: (target) => metrics.observer(spec.namespace.name, target),
          // Pipeline events name their own target (one of an SQS namespace's).
          onEvent: (event) => this.logEvent(event, { ...fields, target: event.target }),
          onWarning: (message) => logger.warn({ event: 'consumer-warning', ...fields }, message),
        }
        if (spec.namespace.backend === 'sqs') {
          const { startSqsRun } = await import('./sqs-consumer.js')
          running.current = await startSqsRun(ctx)
        } else running.current = await startTargetRun(ctx)
        if (!stop.aborted) running.state = 'running'
        await running.current.run()
        backoffMs = RESTART_BACKOFF_MS
      } catch (error) {
        const walError = toWalError(error)
        running.lastError = walError.message
        if (stop.aborted) break
        running.state = 'failed'
        running.restarts++
        logger.error({ event: 'consumer-failed', ...fields, code: walError.code, err: walError.message, retryInMs: backoffMs }, `consumer ${spec.key} failed: ${walError.message}; starting it again in ${backoffMs} ms`)
        await sleep(backoffMs, undefined, { signal: stop }).catch(() => undefined)
        backoffMs = Math.min(backoffMs * 2, MAX_RESTART_BACKOFF_MS)
      } finally {
        const current = running.current
        running.current = undefined
        if (current) {
          for (const done of current.snapshot()) {
            const totals = running.totals.get(done.target) ?? { applied: 0, retried: 0, scheduled: 0, deadLettered: 0, circuitOpened: 0 }
            for (const k of TOTALS) totals[k] += done[k]
            running.totals.set(done.target, totals)
          }
          await current.close()
        }
      }
    }
    running.state = 'stopped'
  }

  private logEvent(event: PipelineEvent, fields: Record<string, string>): void {
    const { logger } = this.options
    switch (event.type) {
      case 'dead-lettered':
        logger.warn(
          { event: 'dead-lettered', ...fields, id: event.mutation.id, key: event.mutation.key, attempts: event.mutation.attempts, errorClass: event.error.errorClass, code: event.error.code, err: event.error.message },
          `dead-lettered ${event.mutation.id}: ${event.error.message}`,
        )
        return
      case 'circuit-open':
        logger.warn({ event: 'circuit-open', ...fields, code: event.error.code, err: event.error.message }, `target unavailable, pausing it: ${event.error.message}`)
        return
      case 'log-locked':
        logger.warn({ event: 'log-locked', ...fields, code: event.error.code, err: event.error.message }, `waiting for the log's write lock: ${event.error.message}`)
        return
      case 'partitions':
        logger.info({ event: 'partitions', ...fields, partitions: event.partitions }, `now consuming partitions ${event.partitions.join(',') || '(none)'}`)
    }
  }

  /** Per namespace/target: its consumer's state, counts and lag, read now. */
  async status(): Promise<ConsumerStatus[]> {
    const out: ConsumerStatus[] = []
    for (const running of [...this.running.values()].sort((a, b) => a.spec.key.localeCompare(b.spec.key))) {
      const { spec, current } = running
      const snapshots = new Map((current?.snapshot() ?? []).map((s) => [s.target, s]))
      const [counts, lags] = await Promise.all([current?.counts().catch(() => null), this.lagOf(running)])
      for (const target of spec.targets) {
        const snapshot = snapshots.get(target.name)
        const t = running.totals.get(target.name)
        const sum = (k: keyof Totals): number => (t?.[k] ?? 0) + (snapshot?.[k] ?? 0)
        out.push({
          namespace: spec.namespace.name,
          target: target.name,
          type: target.type,
          shard: spec.shard,
          state: running.state,
          partitions: snapshot?.partitions ?? [],
          applied: sum('applied'),
          retried: sum('retried'),
          scheduled: sum('scheduled'),
          deadLettered: sum('deadLettered'),
          circuitOpened: sum('circuitOpened'),
          inFlight: snapshot?.inFlight ?? (snapshot ? null : 0),
          circuit: snapshot?.circuit ?? null,
          lag: lags.filter((l) => l.target === target.name).reduce((n, l) => n + l.lag, 0),
          waiting: counts?.get(target.name)?.scheduled ?? 0,
          dlqDepth: counts?.get(target.name)?.deadLetters ?? 0,
          startedAt: running.startedAt.toISOString(),
          restarts: running.restarts,
          lastError: running.lastError,
        })
      }
    }
    return out
  }

  /** Mutations not done yet per target and partition each consumer owns now (for /metrics). */
  async lag(): Promise<PartitionLag[]> {
    const all = await Promise.all([...this.running.values()].map((r) => this.lagOf(r)))
    return all.flat()
  }

  private async lagOf(running: RunningConsumer): Promise<PartitionLag[]> {
    return (await running.current?.lag().catch(() => [])) ?? []
  }
}

/** Log fields of a consumer: an SQS namespace's names all its targets. */
function fieldsOf(spec: ConsumerSpec): { namespace: string; target: string; shard: string } {
  return { namespace: spec.namespace.name, target: spec.targets.map((t) => t.name).join(','), shard: spec.shard }
}
