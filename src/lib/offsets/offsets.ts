/**
 * `wal offsets show|reset`: where each target of a namespace stands in the log, and moving it — back to
 * apply mutations again (after restoring a backup), or forward to pass them by. A reset is a plan unless
 * executed; executed, it is one transaction of the consumer state (fenced against a running consumer,
 * or refused while one holds the partitions), and an audit line (who, when, old and new offsets).
 */
import { loadConfig, namespaceSettings } from '../config/load.js'
import type { NamespaceSettings, ResolvedConfig } from '../config/schema.js'
import { actor } from '../dlq/dlq.js'
import { UsageError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import type { ConsumerStore, LogBackend, PartitionMark } from '../log/backend.js'
import { openLog } from '../log/open.js'
import { parsePointInTimeMs } from '../time.js'

export interface OffsetsOptions extends CommonOptions {
  namespace?: string
  target?: string
}

/** One partition of one target, as `offsets show` lists it. */
export interface OffsetRow {
  target: string
  partition: number
  /** The first offset the log holds, and the next one it writes. */
  low: number
  high: number
  /** The next offset the target applies. */
  committed: number
  lag: number
  /** The consumer holding the partition now, if one does. */
  owner: string | null
}

export interface OffsetsReport {
  namespace: string
  offsets: OffsetRow[]
}

/** Where `offsets reset` moves a target: exactly one of these. */
export interface ResetTo {
  toTime?: string
  toOffset?: string
  toBeginning?: boolean
  toEnd?: boolean
  shiftBy?: string
}

export interface ResetOptions extends OffsetsOptions, ResetTo {
  /** Required: checked here, so that its absence is worded like every other usage error. */
  target?: string
  execute: boolean
  force: boolean
}

export interface ResetPlanRow {
  partition: number
  current: number
  next: number
  /** Mutations the target applies again (moved back), and passes by unapplied (moved forward). */
  reapplied: number
  skipped: number
  owner: string | null
}

export interface ResetResult {
  namespace: string
  target: string
  /** What the reset was asked to do, in words. */
  to: string
  executed: boolean
  plan: ResetPlanRow[]
  /** Consumers fenced by --force. */
  fenced: Array<{ partition: number; owner: string }>
}

/** SQS has no offsets to move: what it allows instead. */
function sqsHasNoOffsets(namespace: string): UsageError {
  return new UsageError(
    `namespace "${namespace}" is on SQS, whose queues have no offsets: a message leaves its queue once every target applied it, so there is no position to show or move back`,
    {
      code: 'WAL_OFFSETS_UNSUPPORTED',
      suggestions: [
        `to apply mutations again, produce them again (e.g. wal dlq replay -n ${namespace} for dead-lettered ones, or from your own copy with wal produce -n ${namespace} --target T)`,
        'to hold a queue back, stop its consumers',
      ],
    },
  )
}

interface Opened {
  config: ResolvedConfig
  settings: NamespaceSettings
  log: LogBackend
}

async function open(options: OffsetsOptions): Promise<Opened> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const settings = namespaceSettings(config, options.namespace)
  if (settings.backend === 'sqs') throw sqsHasNoOffsets(settings.name)
  if (options.target !== undefined && !settings.targets.some((t) => t.name === options.target)) {
    throw new UsageError(`namespace "${settings.name}" has no target "${options.target}"`, {
      suggestions: [`its targets: ${settings.targets.map((t) => t.name).join(', ') || '(none)'}`],
    })
  }
  return { config, settings, log: await openLog(config, settings, { create: false }) }
}

async function withStore<T>(log: LogBackend, target: string, work: (store: ConsumerStore) => Promise<T>): Promise<T> {
  const store = await log.consumerStore(target)
  try {
    return await work(store)
  } finally {
    await store.close()
  }
}

/** Live owners per partition (an expired lease is no owner). */
async function ownersOf(store: ConsumerStore): Promise<Map<number, string>> {
  const now = Date.now()
  return new Map((await store.leases()).filter((l) => l.expiresAtMs >= now).map((l) => [l.partition, l.owner]))
}

export async function showOffsets(options: OffsetsOptions): Promise<OffsetsReport> {
  const { settings, log } = await open(options)
  try {
    const marks = await log.marks()
    const offsets: OffsetRow[] = []
    for (const t of settings.targets) {
      if (options.target !== undefined && t.name !== options.target) continue
      await withStore(log, t.name, async (store) => {
        const committed = await store.committed(marks.map((m) => m.partition))
        const owners = await ownersOf(store)
        for (const m of marks) {
          const at = committed.get(m.partition)!
          offsets.push({ target: t.name, partition: m.partition, low: m.low, high: m.high, committed: at, lag: Math.max(0, m.high - at), owner: owners.get(m.partition) ?? null })
        }
      })
    }
    return { namespace: settings.name, offsets }
  } finally {
    await log.close()
  }
}

function describeTo(to: ResetTo): string {
  if (to.toTime !== undefined) return `--to-time ${to.toTime}`
  if (to.toOffset !== undefined) return `--to-offset ${to.toOffset}`
  if (to.toBeginning) return '--to-beginning'
  if (to.toEnd) return '--to-end'
  return `--shift-by ${to.shiftBy}`
}

const INTEGER = /^[+-]?\d{1,15}$/

/** The new offset of each partition the reset moves. */
async function targetOffsets(to: ResetTo, log: LogBackend, marks: readonly PartitionMark[], committed: ReadonlyMap<number, number>): Promise<Map<number, number>> {
  const chosen = [to.toTime !== undefined, to.toOffset !== undefined, to.toBeginning === true, to.toEnd === true, to.shiftBy !== undefined].filter(Boolean).length
  if (chosen !== 1) {
    throw new UsageError(chosen === 0 ? 'say where to move the offsets' : 'give only one of --to-time, --to-offset, --to-beginning, --to-end, --shift-by', {
      suggestions: ['e.g. --to-time 2026-12-01T09:00:00Z, --to-offset 0:120,1:98, --to-beginning, --to-end, --shift-by=-10'],
    })
  }
  const out = new Map<number, number>()
  const clamp = (m: PartitionMark, offset: number): number => Math.min(m.high, Math.max(m.low, offset))
  if (to.toTime !== undefined) {
    const ms = parsePointInTimeMs(to.toTime, Date.now())
    if (ms === undefined) throw new UsageError(`--to-time "${to.toTime}" is neither an ISO 8601 time nor a duration ago`, { suggestions: ['use e.g. --to-time 2026-12-01T09:00:00Z or --to-time 2h (two hours ago)'] })
    const found = await log.offsetsForTime(ms)
    for (const m of marks) out.set(m.partition, clamp(m, found.get(m.partition) ?? m.high))
  } else if (to.toBeginning) for (const m of marks) out.set(m.partition, m.low)
  else if (to.toEnd) for (const m of marks) out.set(m.partition, m.high)
  else if (to.shiftBy !== undefined) {
    if (!INTEGER.test(to.shiftBy.trim())) throw new UsageError(`--shift-by "${to.shiftBy}" is not a whole number`, { suggestions: ['use e.g. --shift-by=-10 (back ten) or --shift-by 5 (forward five)'] })
    const by = Number(to.shiftBy.trim())
    for (const m of marks) out.set(m.partition, clamp(m, committed.get(m.partition)! + by))
  } else {
    for (const part of to.toOffset!.split(',')) {
      const match = /^\s*(\d{1,6}):(\d{1,15})\s*$/.exec(part)
      const mark = match ? marks[Number(match[1])] : undefined
      if (!match || mark === undefined) {
        throw new UsageError(`--to-offset "${part}" is not PARTITION:OFFSET with a partition of the log (0..${marks.length - 1})`, { suggestions: ['use e.g. --to-offset 0:120,3:98'] })
      }
      const offset = Number(match[2])
      if (offset < mark.low || offset > mark.high) {
        throw new UsageError(`--to-offset ${part.trim()}: partition ${mark.partition} holds offsets ${mark.low}..${mark.high} (${mark.high} is its end)`, {
          suggestions: ['give an offset in that range, or use --to-beginning / --to-end'],
        })
      }
      if (out.has(mark.partition)) throw new UsageError(`--to-offset names partition ${mark.partition} twice`)
      out.set(mark.partition, offset)
    }
  }
  return out
}

export async function resetOffsets(options: ResetOptions): Promise<ResetResult> {
  const target = options.target
  if (target === undefined) {
    throw new UsageError('offsets reset moves one target: name it with --target', { suggestions: ['wal offsets show -n NS lists the targets and where each stands'] })
  }
  const { settings, log } = await open(options)
  try {
    const marks = await log.marks()
    return await withStore(log, target, async (store) => {
      const committed = await store.committed(marks.map((m) => m.partition))
      const next = await targetOffsets(options, log, marks, committed)
      const owners = await ownersOf(store)
      const plan: ResetPlanRow[] = [...next].map(([partition, offset]) => {
        const current = committed.get(partition)!
        return { partition, current, next: offset, reapplied: Math.max(0, current - offset), skipped: Math.max(0, offset - current), owner: owners.get(partition) ?? null }
      })
      const result: ResetResult = { namespace: settings.name, target, to: describeTo(options), executed: false, plan, fenced: [] }
      if (!options.execute) return result
      const { fenced } = await store.resetOffsets(next, { force: options.force })
      const dlq = await log.deadLetterQueue()
      try {
        await dlq.recordAudit({
          atMs: Date.now(),
          actor: actor(),
          action: 'offsets-reset',
          details: { namespace: settings.name, target, to: result.to, partitions: plan.map((r) => ({ partition: r.partition, from: r.current, to: r.next })), ...(fenced.length > 0 ? { fenced } : {}) },
        })
      } finally {
        await dlq.close()
      }
      return { ...result, executed: true, fenced }
    })
  } finally {
    await log.close()
  }
}
