/**
 * `wal consume`: runs the pipeline of each target of a namespace (or the one asked for) over a shard of
 * its partitions, until stopped — or, with --until-idle, until nothing is left to do now.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'

import { clockFromEnv } from '../clock.js'
import { loadConfig, namespaceSettings, rateFlag } from '../config/load.js'
import type { TargetSettings } from '../config/schema.js'
import { BackendUnavailableError, UsageError, WalError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import type { ShardRequest } from '../log/backend.js'
import { openLog } from '../log/open.js'
import { RateLimiter } from '../pipeline/rate-limiter.js'
import { CONSUMER_LOCK_WAIT_MS, TargetConsumer, type PipelineEvent, type TargetStats } from '../pipeline/target-consumer.js'
import { refuseForwardingLoop } from '../targets/forwarding-loop.js'
import { openTarget } from '../targets/open.js'
import { parseDurationMs } from '../time.js'
import { escapeControl } from '../cli/render.js'

export interface ConsumeOptions extends CommonOptions {
  namespace?: string
  /** "I/N" or "auto"; default: every partition ("0/1"). */
  shard?: string
  target?: string
  untilIdle?: boolean
  /** With untilIdle: give up (exit 5) on a target when work is left and nothing moved for this long. Default 2m. */
  idleTimeout?: string
  concurrency?: number
  /** "R/s": at most R applies per second for this consumer, over its targets. */
  rate?: string
  leaseTtl?: string
  drainTimeout?: string
  /** First signal: stop reading, drain, commit. */
  signal: AbortSignal
}

export interface ConsumeSummary {
  namespace: string
  owner: string
  targets: TargetStats[]
  /** Mutations dead-lettered during this run, over all targets (`wal consume` then exits 8). */
  deadLettered: number
}

/** How long --until-idle waits for a target that stays paused (or partitions held elsewhere) before it exits 5. */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000

function summarize(namespace: string, owner: string, targets: TargetStats[]): ConsumeSummary {
  return { namespace, owner, targets, deadLettered: targets.reduce((n, t) => n + t.deadLettered, 0) }
}

export function parseShard(text: string | undefined, partitions: number): ShardRequest {
  if (text === undefined) return { index: 0, count: 1 }
  if (text === 'auto') return 'auto'
  const match = /^(\d+)\/(\d+)$/.exec(text)
  const index = Number(match?.[1])
  const count = Number(match?.[2])
  if (!match || count < 1 || index >= count) {
    throw new UsageError(`--shard "${text}" is not a shard`, { suggestions: ['use I/N with 0 <= I < N (e.g. --shard 3/8), or --shard auto'] })
  }
  if (count > partitions) {
    throw new UsageError(`--shard ${text}: the namespace has ${partitions} partitions, so at most ${partitions} shards`, {
      suggestions: [`use N <= ${partitions}`],
    })
  }
  return { index, count }
}

function durationOption(flag: string, text: string | undefined, fallbackMs: number): number {
  if (text === undefined) return fallbackMs
  const ms = parseDurationMs(text)
  if (ms === undefined || ms <= 0) throw new UsageError(`${flag} "${text}" is not a duration`, { suggestions: [`use e.g. ${flag} 10s`] })
  return ms
}

function describeEvent(event: PipelineEvent, json: boolean): string {
  if (json) {
    if (event.type === 'dead-lettered') {
      return JSON.stringify({ event: event.type, target: event.target, id: event.mutation.id, key: event.mutation.key, errorClass: event.error.errorClass, code: event.error.code, message: event.error.message })
    }
    if (event.type === 'circuit-open' || event.type === 'log-locked') return JSON.stringify({ event: event.type, target: event.target, code: event.error.code, message: event.error.message })
    return JSON.stringify({ event: event.type, target: event.target, partitions: event.partitions })
  }
  switch (event.type) {
    case 'dead-lettered':
      return `wal: ${event.target}: dead-lettered ${event.mutation.id} key=${JSON.stringify(event.mutation.key)} after ${event.mutation.attempts} attempt(s): ${event.error.errorClass} ${event.error.code}: ${event.error.message}`
    case 'circuit-open':
      return `wal: ${event.target}: target unavailable, pausing it (${event.error.code}: ${event.error.message})`
    case 'log-locked':
      return `wal: ${event.target}: waiting: ${event.error.message}\n  hint: ${event.error.suggestions[0] ?? ''}`
    case 'partitions':
      return `wal: ${event.target}: now consuming partitions ${event.partitions.length > 0 ? event.partitions.join(',') : '(none)'}`
  }
}

export async function consume(options: ConsumeOptions): Promise<ConsumeSummary> {
  const concurrencyFlag = options.concurrency
  if (concurrencyFlag !== undefined && (!Number.isInteger(concurrencyFlag) || concurrencyFlag < 1)) throw new UsageError('--concurrency must be a whole number, 1 or more')
  // --concurrency wins; else the target's own (Cassandra), else 16 applies at once.
  const concurrencyOf = (t: TargetSettings): number => concurrencyFlag ?? (t.type === 'cassandra' ? t.concurrency : 16)
  const rate = rateFlag(options.rate)
  const leaseTtlMs = durationOption('--lease-ttl', options.leaseTtl, 10_000)
  const drainTimeoutMs = durationOption('--drain-timeout', options.drainTimeout, 30_000)
  const idleTimeoutMs = durationOption('--idle-timeout', options.idleTimeout, DEFAULT_IDLE_TIMEOUT_MS)
  const now = clockFromEnv(options.io.env)

  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const settings = namespaceSettings(config, options.namespace)
  const targets = options.target === undefined ? settings.targets : settings.targets.filter((t) => t.name === options.target)
  if (targets.length === 0) {
    const names = settings.targets.map((t) => t.name)
    throw new UsageError(
      options.target === undefined
        ? `namespace "${settings.name}" has no targets to apply its mutations to`
        : `namespace "${settings.name}" has no target "${options.target}"`,
      { suggestions: [names.length > 0 ? `its targets: ${names.join(', ')}` : `add targets under namespaces.${settings.name}.targets in the config`] },
    )
  }
  if (settings.backend === 'sqs' && options.target !== undefined && settings.targets.length > 1) {
    throw new UsageError(`--target: on an SQS namespace one consumer applies each message to all of its targets (${settings.targets.map((t) => t.name).join(', ')})`, {
      suggestions: ['drop --target: a message is deleted from the queue only once every target applied it or dead-lettered it'],
    })
  }
  refuseForwardingLoop(config, settings, targets)
  const owner = `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`
  const log = await openLog(config, settings, { create: true })
  // The log's own partition count: a Kafka topic may have other than the config says.
  let shard
  try {
    shard = parseShard(options.shard, log.partitions)
  } catch (error) {
    await log.close()
    throw error
  }
  const abort = new AbortController()
  let drainTimer: NodeJS.Timeout | undefined
  const onStop = (): void => {
    drainTimer = setTimeout(() => abort.abort(), drainTimeoutMs)
  }
  options.signal.addEventListener('abort', onStop, { once: true })
  const shared = [
    ...(settings.ratePerSec === null ? [] : [new RateLimiter(settings.ratePerSec)]),
    ...(rate === null ? [] : [new RateLimiter(rate)]),
  ]
  const onEvent = (event: PipelineEvent): void => {
    options.io.stderr.write(`${options.json ? describeEvent(event, true) : escapeControl(describeEvent(event, false))}\n`)
  }
  const opened: Array<{ close(): Promise<void> }> = []
  try {
    if (settings.backend === 'sqs') {
      const { SqsConsumer } = await import('../log/sqs/consumer.js')
      const runs = []
      for (const t of targets) {
        const target = await openTarget(t)
        opened.push(target)
        runs.push({ settings: t, target, limiters: t.ratePerSec === null ? shared : [...shared, new RateLimiter(t.ratePerSec)] })
      }
      const { shardQueues } = await import('../log/sqs/queues.js')
      const consumer = new SqsConsumer({
        log: log as import('../log/sqs/sqs-log.js').SqsLog,
        targets: runs,
        shards: shardQueues(shard, log.partitions),
        // One consumer applies each message to every target: as many at once as the most parallel one.
        concurrency: Math.max(...targets.map(concurrencyOf)),
        now,
        untilIdle: options.untilIdle ?? false,
        idleTimeoutMs,
        stop: options.signal,
        abort: abort.signal,
        onEvent,
        onWarning: (message) => options.io.stderr.write(options.json ? `${JSON.stringify({ event: 'warning', message })}\n` : `wal: ${escapeControl(message)}\n`),
      })
      return summarize(settings.name, owner, await consumer.run())
    }
    const consumers = []
    for (const t of targets) {
      const store = await log.consumerStore(t.name, { lockWaitMs: CONSUMER_LOCK_WAIT_MS })
      opened.push(store)
      const target = await openTarget(t, { concurrency: concurrencyOf(t) }).catch((error: unknown) => {
        // Already worded for the user (a refused login, an unknown keyspace, an unreachable cluster).
        if (error instanceof WalError) throw error
        throw new BackendUnavailableError(`cannot open target "${t.name}" of namespace "${settings.name}": ${(error as Error).message}`, {
          cause: error,
          suggestions: [`check namespaces.${settings.name}.targets.${t.name} in the config`],
        })
      })
      opened.push(target)
      consumers.push(
        new TargetConsumer({
          log,
          store,
          target,
          settings: t,
          namespaceTargets: () => settings.targets.map((n) => n.name),
          owner,
          shard,
          concurrency: concurrencyOf(t),
          limiters: t.ratePerSec === null ? shared : [...shared, new RateLimiter(t.ratePerSec)],
          now,
          untilIdle: options.untilIdle ?? false,
          idleTimeoutMs,
          stop: options.signal,
          abort: abort.signal,
          leaseTtlMs,
          commitIntervalMs: 50,
          // How often an idle consumer looks for new or due mutations: bounds the added latency.
          pollIntervalMs: 20,
          onEvent,
          txnTimeoutMs: settings.txnTimeoutMs,
        }),
      )
    }
    // A failing target never holds up a healthy one: each runs on its own, and all are awaited.
    const results = await Promise.allSettled(consumers.map((c) => c.run()))
    const failed = results.find((r) => r.status === 'rejected')
    if (failed) throw failed.reason
    return summarize(
      settings.name,
      owner,
      results.map((r) => (r as PromiseFulfilledResult<TargetStats>).value),
    )
  } finally {
    clearTimeout(drainTimer)
    options.signal.removeEventListener('abort', onStop)
    for (const resource of opened.reverse()) await resource.close().catch(() => undefined)
    await log.close()
  }
}
