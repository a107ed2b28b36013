/**
 * `wal explain ID`: the life of one mutation — produced when and where, every attempt at each target
 * with its error, applied or dead-lettered or still waiting, and its replays. Each write of it to the
 * log (the produce, then each DLQ replay) is a delivery; per target, every delivery has its own outcome.
 */
import { loadConfig, namespaceSettings } from '../config/load.js'
import type { ResolvedConfig, TargetSettings } from '../config/schema.js'
import { formatCreatedAt } from '../envelope/created-at.js'
import type { LogRecord } from '../envelope/envelope.js'
import { NotFoundError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import type { HistoryEvent, LogBackend } from '../log/backend.js'
import { listLogs, openLog } from '../log/open.js'
import { replaysOf } from '../dlq/replays.js'
import { describePlan, planBatch } from '../targets/cassandra/statements.js'
import { parseOperation, partsOf } from '../targets/operations.js'
import { explainTxn, type TxnReport } from '../txn/explain.js'

export interface ExplainOptions extends CommonOptions {
  id: string
  /** Where to look; all namespaces when not given. */
  namespace?: string
}

export type TargetStatus = 'applied' | 'dead-lettered' | 'waiting' | 'pending' | 'skipped' | 'not addressed'

export interface ExplainEvent {
  at: string
  event: HistoryEvent['event']
  attempt: number
  errorClass?: string
  code?: string
  message?: string
}

/** One delivery (the produced copy, or a replay) at one target, and how it ended there. */
export interface DeliveryReport {
  /** 0 for the mutation as produced, n for its n-th replay. */
  replay: number
  partition: number
  offset: number
  status: TargetStatus
  detail: string
  events: ExplainEvent[]
}

export interface ExplainReport {
  id: string
  namespace: string
  key: string
  createdAt: string
  /** Each time it was written to the log: first the produce, then any replays. */
  writes: Array<{ partition: number; offset: number; appendedAt: string; target: string | null; notBefore: string | null; replay: number }>
  targets: Array<{
    target: string
    /** The outcome of the latest delivery addressed to this target. */
    status: TargetStatus
    detail: string
    /** Every recorded event at this target, all deliveries together, in order. */
    events: ExplainEvent[]
    /** Each delivery, in log order, with its own outcome and events. */
    deliveries: DeliveryReport[]
    /** How the target applies this mutation, where it has a choice (Cassandra: one logged batch, or part by part). */
    plan?: string
  }>
}

/** A Cassandra target's plan for a batch: one logged batch, or part by part (and why). */
function applyPlan(target: TargetSettings, mutation: LogRecord): string | undefined {
  if (target.type !== 'cassandra') return undefined
  try {
    const parts = partsOf(parseOperation(mutation))
    return describePlan(planBatch(parts, target.maxBatchBytes))
  } catch {
    return undefined
  }
}

function toEvent(h: HistoryEvent): ExplainEvent {
  return {
    at: new Date(h.atMs).toISOString(),
    event: h.event,
    attempt: h.attempt,
    ...(h.errorClass ? { errorClass: h.errorClass } : {}),
    ...(h.code ? { code: h.code } : {}),
    ...(h.message ? { message: h.message } : {}),
  }
}

async function explainIn(log: LogBackend, config: ResolvedConfig, records: LogRecord[]): Promise<ExplainReport> {
  const settings = namespaceSettings(config, log.namespace)
  const latest = records.at(-1)!
  const dlq = await log.deadLetterQueue()
  const dead = await dlq.entries({ id: latest.id }).finally(() => dlq.close())
  const replays = records.map((r) => replaysOf(r))
  // Events written before history said which delivery they belong to: the latest write before them.
  const deliveryAt = (atMs: number): number => {
    let found = replays[0]!
    records.forEach((r, i) => {
      if (r.appendedAtMs <= atMs) found = replays[i]!
    })
    return found
  }
  const skipList = await log.skipList?.()
  const skips = skipList ? await skipList.entries().finally(() => skipList.close()) : []
  const targets: ExplainReport['targets'] = []
  for (const target of settings.targets) {
    const mark = skips.find((s) => s.id === latest.id && (s.target === null || s.target === target.name))
    const marked = mark ? `marked to skip by ${mark.actor} at ${new Date(mark.atMs).toISOString()}${mark.target === null ? ' (at every target)' : ''}${mark.reason === null ? '' : `: ${JSON.stringify(mark.reason)}`}` : ''
    const store = await log.consumerStore(target.name)
    try {
      const { history, scheduled } = await store.story(latest.id)
      const committed = await store.committed([...new Set(records.map((r) => r.partition))])
      const deliveries: DeliveryReport[] = records.map((record, i) => {
        const replay = replays[i]!
        const mine = history.filter((h) => (h.delivery ?? deliveryAt(h.atMs)) === replay)
        const base = { replay, partition: record.partition, offset: record.offset, events: mine.map(toEvent) }
        if (record.target !== null && record.target !== target.name) {
          return { ...base, status: 'not addressed', detail: `this copy is addressed to target "${record.target}" only` }
        }
        const inDlq = dead.filter((d) => d.target === target.name && replaysOf(d.mutation) === replay).at(-1)
        if (inDlq) {
          return {
            ...base,
            status: 'dead-lettered',
            detail: `in the DLQ (entry ${inDlq.seq}${inDlq.parked ? ', parked by the loop guard' : ''}) since ${new Date(inDlq.deadAtMs).toISOString()}: ${inDlq.errorClass} ${inDlq.code}: ${inDlq.message}`,
          }
        }
        const waiting = scheduled.find((e) => (e.delivery ?? replay) === replay)
        if (waiting) return { ...base, status: 'waiting', detail: `scheduled for ${new Date(waiting.dueAtMs).toISOString()} (attempts so far: ${waiting.attempts})` }
        const last = mine.at(-1)
        if (last?.event === 'skipped') {
          return { ...base, status: 'skipped', detail: `passed by unapplied at ${new Date(last.atMs).toISOString()}${mark ? `, ${marked}` : ' (no longer marked: wal skip --undo)'}` }
        }
        if (last?.event === 'dead-lettered') {
          const next = records.slice(i + 1).find((r) => replaysOf(r) > replay)
          return {
            ...base,
            status: 'dead-lettered',
            detail:
              `dead-lettered on attempt ${last.attempt} at ${new Date(last.atMs).toISOString()}: ${last.errorClass ?? ''} ${last.code ?? ''}: ${last.message ?? ''}; ` +
              (next ? `replayed from the DLQ (#${replaysOf(next)})` : 'no longer in the DLQ (purged)'),
          }
        }
        const at = committed.get(record.partition) ?? 0
        if (at > record.offset) {
          const applied = mine.filter((h) => h.event === 'applied').at(-1)
          return {
            ...base,
            status: 'applied',
            detail: applied ? `applied on attempt ${applied.attempt} at ${new Date(applied.atMs).toISOString()}` : 'applied on the first attempt (its offset is committed)',
          }
        }
        return { ...base, status: 'pending', detail: `not consumed yet (the target is at offset ${at} of partition ${record.partition})${mark ? `; ${marked}` : ''}` }
      })
      const current = deliveries.filter((d) => d.status !== 'not addressed').at(-1)
      const plan = applyPlan(target, latest)
      targets.push({
        target: target.name,
        status: current?.status ?? 'not addressed',
        detail: current?.detail ?? `no copy of the mutation is addressed to it (only to "${latest.target}")`,
        events: history.map(toEvent),
        deliveries,
        ...(plan === undefined ? {} : { plan }),
      })
    } finally {
      await store.close()
    }
  }
  return {
    id: latest.id,
    namespace: log.namespace,
    key: latest.key,
    createdAt: formatCreatedAt(latest.createdAtMs),
    writes: records.map((r, i) => ({
      partition: r.partition,
      offset: r.offset,
      appendedAt: new Date(r.appendedAtMs).toISOString(),
      target: r.target,
      notBefore: r.notBeforeMs === null ? null : new Date(r.notBeforeMs).toISOString(),
      replay: replays[i]!,
    })),
    targets,
  }
}

/** The life of one mutation. */
export async function explain(options: ExplainOptions): Promise<ExplainReport> {
  return (await explainId(options, false)) as ExplainReport
}

/** `wal explain ID`: a mutation's life, or else a transaction's (txn/explain.ts). */
export async function explainMutationOrTxn(options: ExplainOptions): Promise<ExplainReport | TxnReport> {
  return explainId(options, true)
}

async function explainId(options: ExplainOptions, transactions: boolean): Promise<ExplainReport | TxnReport> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const names = options.namespace !== undefined ? [options.namespace] : [...new Set([...config.namespaces.keys(), ...(await listLogs(config))])].sort()
  for (const name of names) {
    let log: LogBackend
    try {
      log = await openLog(config, namespaceSettings(config, name), { create: false })
    } catch (error) {
      if (error instanceof NotFoundError) continue
      throw error
    }
    try {
      const records = await log.find(options.id)
      if (records.length > 0) return await explainIn(log, config, records)
      // Not a mutation: a transaction id (txn/explain.ts)?
      const txn = transactions ? await log.transaction?.(options.id) : undefined
      if (txn !== undefined) return await explainTxn(log, config, txn)
    } finally {
      await log.close()
    }
  }
  throw new NotFoundError(`no mutation or transaction ${options.id} in ${options.namespace === undefined ? 'any namespace' : `namespace "${options.namespace}"`}`, {
    code: 'WAL_MUTATION_NOT_FOUND',
    suggestions: ['the id is the one produce printed (id=…, or txn=… for a transaction), or the "id" of an envelope from wal tail --json'],
  })
}
