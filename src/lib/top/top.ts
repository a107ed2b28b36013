/**
 * `wal top`: per namespace, target and shard — throughput, lag, in-flight, retries, circuit, DLQ depth
 * and the top error classes. From the daemon's status endpoint when a daemon runs for this state
 * directory, otherwise straight from the backends (what `wal ns show` and `wal dlq stats` compute).
 * `watchTop` is the core stream a live view consumes; `top` is one snapshot, or the live view on a terminal.
 */
import { setTimeout as sleep } from 'node:timers/promises'

import type { DaemonStatus } from '../daemon/daemon.js'
import { deadLetterStats } from '../dlq/dlq.js'
import { NotFoundError, UsageError, WalError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import { listNamespaces, showNamespace } from '../ns/ns.js'
import { parseDurationMs } from '../time.js'

export interface TopOptions extends CommonOptions {
  /** Only this namespace. */
  namespace?: string
  /** Time between refreshes of the live view: a duration (`2s`, `500ms`). */
  interval?: string
  signal?: AbortSignal
}

export interface ErrorClassCount {
  errorClass: string
  code: string
  count: number
}

export interface TopRow {
  namespace: string
  target: string
  /** The daemon's shard (`2/8`, `all`), or from the backends the partitions' owners (`-` when none). */
  shard: string
  /** The consumer's state from the daemon; from the backends `owned` or `idle` (no live lease). */
  state: string
  /** Mutations applied per second since the previous snapshot; null in the first one. */
  throughputPerSec: number | null
  lag: number
  /** Mutations being applied now; known only from the daemon (null otherwise). */
  inFlight: number | null
  /** Retries so far (daemon), or mutations now waiting for a retry or a delay (backends). */
  retries: number
  waiting: number
  /** The breaker now (`closed`, `open`, `half-open`), with how often it opened (`open (3×)`); `-` from the backends. */
  circuit: string
  dlqDepth: number
  /** The most frequent error classes in this target's DLQ, most first (at most three). */
  topErrors: ErrorClassCount[]
}

export interface TopSnapshot {
  at: string
  source: 'daemon' | 'backends'
  rows: TopRow[]
}

/** The breaker's state now, and how often it opened in this daemon's life when it did. */
export function circuitText(state: 'closed' | 'open' | 'half-open' | null, opened: number): string {
  const now = state ?? (opened === 0 ? 'closed' : '?')
  return opened === 0 ? now : `${now} (${opened}× opened)`
}

/** A row with the counter its throughput comes from (applied, or the sum of committed offsets). */
type Sample = { row: TopRow; counter: number }

async function topErrors(options: CommonOptions, namespace: string): Promise<Map<string, ErrorClassCount[]>> {
  const byTarget = new Map<string, ErrorClassCount[]>()
  try {
    const { groups } = await deadLetterStats({ ...options, namespace })
    for (const g of groups) {
      const list = byTarget.get(g.target) ?? []
      if (list.length < 3) list.push({ errorClass: g.errorClass, code: g.code, count: g.count })
      byTarget.set(g.target, list)
    }
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error
  }
  return byTarget
}

async function fromDaemon(options: TopOptions): Promise<{ status: DaemonStatus } | null> {
  const { daemonStatus } = await import('../daemon/control.js')
  try {
    return { status: await daemonStatus(options) }
  } catch (error) {
    // No daemon for this state directory: read the backends.
    if (error instanceof NotFoundError) return null
    throw error
  }
}

async function sample(options: TopOptions): Promise<{ source: TopSnapshot['source']; samples: Sample[] }> {
  const daemon = await fromDaemon(options)
  const samples: Sample[] = []
  const errors = new Map<string, Map<string, ErrorClassCount[]>>()
  const errorsOf = async (namespace: string, target: string): Promise<ErrorClassCount[]> => {
    if (!errors.has(namespace)) errors.set(namespace, await topErrors(options, namespace))
    return errors.get(namespace)!.get(target) ?? []
  }
  if (daemon) {
    for (const c of daemon.status.consumers) {
      if (options.namespace !== undefined && c.namespace !== options.namespace) continue
      samples.push({
        counter: c.applied,
        row: {
          namespace: c.namespace,
          target: c.target,
          shard: c.shard,
          state: c.state,
          throughputPerSec: null,
          lag: c.lag,
          inFlight: c.inFlight ?? null,
          retries: c.retried,
          waiting: c.waiting,
          circuit: circuitText(c.circuit ?? null, c.circuitOpened),
          dlqDepth: c.dlqDepth,
          topErrors: await errorsOf(c.namespace, c.target),
        },
      })
    }
    return { source: 'daemon', samples }
  }
  const names = options.namespace !== undefined ? [options.namespace] : (await listNamespaces(options)).filter((n) => n.records !== null && !n.unavailable).map((n) => n.name)
  for (const name of names) {
    let details
    try {
      details = await showNamespace({ ...options, namespace: name })
    } catch (error) {
      // One cluster being down does not hide the other namespaces.
      if (options.namespace === undefined && error instanceof WalError) continue
      throw error
    }
    for (const c of details.consumers) {
      const owners = [...new Set(c.leases.map((l) => l.owner))]
      samples.push({
        counter: c.committed.reduce((n, o) => n + o.offset, 0),
        row: {
          namespace: name,
          target: c.target,
          shard: owners.length === 0 ? '-' : owners.join(','),
          state: owners.length === 0 ? 'idle' : 'owned',
          throughputPerSec: null,
          lag: c.lag,
          inFlight: null,
          retries: c.scheduled,
          waiting: c.scheduled,
          circuit: '-',
          dlqDepth: c.deadLetters,
          topErrors: await errorsOf(name, c.target),
        },
      })
    }
  }
  return { source: 'backends', samples }
}

const rowKey = (row: TopRow): string => `${row.namespace}\u0000${row.target}\u0000${row.shard}`

/** Snapshots every intervalMs until the signal aborts, each with throughput against the one before. */
export async function* watchTop(options: TopOptions): AsyncGenerator<TopSnapshot> {
  const intervalMs = parseDurationMs(options.interval ?? '2s')
  if (intervalMs === undefined || intervalMs < 100) throw new UsageError(`--interval ${options.interval}: expected a duration of 100ms or more (500ms, 2s, 1m)`)
  let previous = new Map<string, { counter: number; atMs: number }>()
  while (!options.signal?.aborted) {
    const atMs = Date.now()
    const { source, samples } = await sample(options)
    const next = new Map<string, { counter: number; atMs: number }>()
    for (const s of samples) {
      const before = previous.get(rowKey(s.row))
      if (before && atMs > before.atMs) s.row.throughputPerSec = Math.max(0, ((s.counter - before.counter) * 1000) / (atMs - before.atMs))
      next.set(rowKey(s.row), { counter: s.counter, atMs })
    }
    previous = next
    yield { at: new Date(atMs).toISOString(), source, rows: samples.map((s) => s.row) }
    try {
      await sleep(intervalMs, undefined, { signal: options.signal })
    } catch {
      return
    }
  }
}

/** Whether the live view can run: not --json, and a terminal on both ends. */
function interactive(options: TopOptions): boolean {
  return Boolean(!options.json && (options.io.stdout as { isTTY?: boolean }).isTTY && options.io.stdin.isTTY)
}

/** On a terminal, the live view until quit (undefined); otherwise one snapshot. */
export async function top(options: TopOptions): Promise<TopSnapshot | undefined> {
  if (!interactive(options)) {
    const controller = new AbortController()
    for await (const snapshot of watchTop({ ...options, signal: controller.signal })) {
      controller.abort()
      return snapshot
    }
    return undefined
  }
  const controller = new AbortController()
  const onAbort = (): void => controller.abort()
  options.signal?.addEventListener('abort', onAbort)
  try {
    // ink and React load only here.
    const { renderTopView } = await import('../views/top/render-top-view.js')
    await renderTopView({ snapshots: watchTop({ ...options, signal: controller.signal }), io: options.io, stop: () => controller.abort() })
    return undefined
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
  }
}
