/**
 * The daemon's consumers: one TargetConsumer per namespace × target (the pipeline of `wal consume`),
 * started, stopped (drained) and restarted as reloads ask, and restarted with backoff when one fails.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

import type { Clock } from '../clock.js'
import type { NamespaceSettings, ResolvedConfig } from '../config/schema.js'
import { parseShard } from '../consume/consume.js'
import { toWalError } from '../errors.js'
import type { LogBackend } from '../log/backend.js'
import { openLog } from '../log/open.js'
import { RateLimiter } from '../pipeline/rate-limiter.js'
import { TargetConsumer, type PipelineEvent, type TargetStats } from '../pipeline/target-consumer.js'
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

class RunningConsumer {
  state: ConsumerState = 'starting'
  readonly startedAt = new Date()
  restarts = 0
  lastError: string | null = null
  consumer: TargetConsumer | undefined
  log: LogBackend | undefined
  store: Awaited<ReturnType<LogBackend['consumerStore']>> | undefined
  /** What earlier runs (before a restart) did. */
  readonly totals: Totals = { applied: 0, retried: 0, scheduled: 0, deadLettered: 0, circuitOpened: 0 }
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
  private readonly owner = `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`

  constructor(private readonly options: ConsumerSetOptions) {}

  /** Brings the running consumers in line with the plan; resolves once removed and changed ones drained. */
  async apply(wanted: ReadonlyMap<string, ConsumerSpec>, drainTimeoutMs: number): Promise<ConsumerPlanDiff> {
    const diff = diffConsumers(this.running, wanted)
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
    this.options.logger.info({ event: restarted ? 'consumer-restarted' : 'consumer-started', namespace: spec.namespace.name, target: spec.target.name, shard: spec.shard }, `${restarted ? 'restarting' : 'starting'} consumer ${spec.key}`)
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
      { event: 'consumer-stopped', namespace: spec.namespace.name, target: spec.target.name, shard: spec.shard, drained, tookMs: Date.now() - startedMs },
      drained ? `consumer ${key} drained and stopped` : `consumer ${key} did not drain within ${drainTimeoutMs} ms; what it had not committed is redone by the next consumer`,
    )
  }

  private limiters(namespace: NamespaceSettings): RateLimiter[] {
    if (namespace.ratePerSec === null) return []
    let shared = this.namespaceLimiters.get(namespace.name)
    if (!shared || shared.perSec !== namespace.ratePerSec) {
      shared = { perSec: namespace.ratePerSec, limiter: new RateLimiter(namespace.ratePerSec) }
      this.namespaceLimiters.set(namespace.name, shared)
    }
    return [shared.limiter]
  }

  /** Runs the consumer until stopped; a failure is logged and the consumer started again after a backoff. */
  private async loop(running: RunningConsumer): Promise<void> {
    const { spec } = running
    const { logger, metrics } = this.options
    const stop = running.stopController.signal
    const fields = { namespace: spec.namespace.name, target: spec.target.name, shard: spec.shard }
    let backoffMs = RESTART_BACKOFF_MS
    while (!stop.aborted) {
      const opened: Array<{ close(): Promise<void> }> = []
      try {
        const log = await this.options.logs.get(spec.namespace)
        const shard = parseShard(spec.shard === 'auto' ? 'auto' : spec.shard, log.partitions)
        const store = await log.consumerStore(spec.target.name)
        opened.push(store)
        const target = await openTarget(spec.target)
        opened.push(target)
        const consumer = new TargetConsumer({
          log,
          store,
          target,
          settings: spec.target,
          owner: this.owner,
          shard,
          concurrency: spec.concurrency,
          limiters: [...this.limiters(spec.namespace), ...(spec.target.ratePerSec === null ? [] : [new RateLimiter(spec.target.ratePerSec)])],
          now: this.options.now,
          untilIdle: false,
          stop,
          abort: running.abortController.signal,
          leaseTtlMs: spec.leaseTtlMs,
          commitIntervalMs: 50,
          pollIntervalMs: 20,
          onEvent: (event) => this.logEvent(event, fields),
          observer: metrics.observer(spec.namespace.name, spec.target.name),
        })
        Object.assign(running, { consumer, log, store })
        if (!stop.aborted) running.state = 'running'
        await consumer.run()
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
        const done = running.consumer?.snapshot()
        if (done) for (const k of Object.keys(running.totals) as Array<keyof Totals>) running.totals[k] += done[k]
        running.consumer = undefined
        running.store = undefined
        for (const resource of opened.reverse()) await resource.close().catch(() => undefined)
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
      case 'partitions':
        logger.info({ event: 'partitions', ...fields, partitions: event.partitions }, `now consuming partitions ${event.partitions.join(',') || '(none)'}`)
    }
  }

  /** Per consumer: its state, counts and lag, read now. */
  async status(): Promise<ConsumerStatus[]> {
    const out: ConsumerStatus[] = []
    for (const running of [...this.running.values()].sort((a, b) => a.spec.key.localeCompare(b.spec.key))) {
      const { spec } = running
      const snapshot = running.consumer?.snapshot()
      const counts = await running.store?.counts().catch(() => null)
      const lag = (await this.partitionLag(running)).reduce((sum, l) => sum + l.lag, 0)
      const t = running.totals
      out.push({
        namespace: spec.namespace.name,
        target: spec.target.name,
        type: spec.target.type,
        shard: spec.shard,
        state: running.state,
        partitions: snapshot?.partitions ?? [],
        applied: t.applied + (snapshot?.applied ?? 0),
        retried: t.retried + (snapshot?.retried ?? 0),
        scheduled: t.scheduled + (snapshot?.scheduled ?? 0),
        deadLettered: t.deadLettered + (snapshot?.deadLettered ?? 0),
        circuitOpened: t.circuitOpened + (snapshot?.circuitOpened ?? 0),
        lag,
        waiting: counts?.scheduled ?? 0,
        dlqDepth: counts?.deadLetters ?? 0,
        startedAt: running.startedAt.toISOString(),
        restarts: running.restarts,
        lastError: running.lastError,
      })
    }
    return out
  }

  /** Uncommitted mutations per partition each consumer owns now (for /metrics). */
  async lag(): Promise<PartitionLag[]> {
    const all = await Promise.all([...this.running.values()].map((r) => this.partitionLag(r)))
    return all.flat()
  }

  private async partitionLag(running: RunningConsumer): Promise<PartitionLag[]> {
    const { consumer, log, store } = running
    if (!consumer || !log || !store) return []
    const partitions = consumer.snapshot().partitions
    if (partitions.length === 0) return []
    try {
      const [marks, committed] = await Promise.all([log.marks(), store.committed(partitions)])
      return partitions.map((p) => ({ namespace: running.spec.namespace.name, target: running.spec.target.name, partition: p, lag: Math.max(0, marks[p]!.high - (committed.get(p) ?? 0)) }))
    } catch {
      return []
    }
  }
}
