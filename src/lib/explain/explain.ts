/**
 * `wal explain ID`: the life of one mutation — produced when and where, every attempt at each target
 * with its error, applied or dead-lettered or still waiting, and its replays.
 */
import { loadConfig, namespaceSettings } from '../config/load.js'
import type { ResolvedConfig, TargetSettings } from '../config/schema.js'
import { formatCreatedAt } from '../envelope/created-at.js'
import type { LogRecord } from '../envelope/envelope.js'
import { NotFoundError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import type { HistoryEvent, LogBackend } from '../log/backend.js'
import { listLogs, openLog } from '../log/open.js'
import { REPLAYS_HEADER } from '../dlq/dlq.js'
import { describePlan, planBatch } from '../targets/cassandra/statements.js'
import { parseOperation, partsOf } from '../targets/operations.js'

export interface ExplainOptions extends CommonOptions {
  id: string
  /** Where to look; all namespaces when not given. */
  namespace?: string
}

export type TargetStatus = 'applied' | 'dead-lettered' | 'waiting' | 'pending' | 'not addressed'

export interface ExplainReport {
  id: string
  namespace: string
  key: string
  createdAt: string
  /** Each time it was written to the log: first the produce, then any replays. */
  writes: Array<{ partition: number; offset: number; appendedAt: string; target: string | null; notBefore: string | null; replay: number }>
  targets: Array<{
    target: string
    status: TargetStatus
    detail: string
    events: Array<{ at: string; event: HistoryEvent['event']; attempt: number; errorClass?: string; code?: string; message?: string }>
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

async function explainIn(log: LogBackend, config: ResolvedConfig, records: LogRecord[]): Promise<ExplainReport> {
  const settings = namespaceSettings(config, log.namespace)
  const latest = records.at(-1)!
  const dlq = await log.deadLetterQueue()
  const dead = await dlq.entries({ id: latest.id }).finally(() => dlq.close())
  const targets: ExplainReport['targets'] = []
  for (const target of settings.targets) {
    const store = await log.consumerStore(target.name)
    try {
      const { history, scheduled } = await store.story(latest.id)
      const committed = (await store.committed([latest.partition])).get(latest.partition) ?? 0
      const events = history.map((h) => ({
        at: new Date(h.atMs).toISOString(),
        event: h.event,
        attempt: h.attempt,
        ...(h.errorClass ? { errorClass: h.errorClass } : {}),
        ...(h.code ? { code: h.code } : {}),
        ...(h.message ? { message: h.message } : {}),
      }))
      const inDlq = dead.filter((d) => d.target === target.name)
      let status: TargetStatus
      let detail: string
      if (latest.target !== null && latest.target !== target.name && inDlq.length === 0) {
        status = 'not addressed'
        detail = `the mutation is addressed to target "${latest.target}" only`
      } else if (scheduled.length > 0) {
        status = 'waiting'
        detail = `scheduled for ${new Date(scheduled[0]!.dueAtMs).toISOString()} (attempts so far: ${scheduled[0]!.attempts})`
      } else if (inDlq.length > 0) {
        const d = inDlq.at(-1)!
        status = 'dead-lettered'
        detail = `in the DLQ (entry ${d.seq}${d.parked ? ', parked by the loop guard' : ''}) since ${new Date(d.deadAtMs).toISOString()}: ${d.errorClass} ${d.code}: ${d.message}`
      } else if (committed > latest.offset) {
        status = 'applied'
        const applied = history.filter((h) => h.event === 'applied').at(-1)
        detail = applied ? `applied on attempt ${applied.attempt} at ${new Date(applied.atMs).toISOString()}` : 'applied on the first attempt (its offset is committed)'
      } else {
        status = 'pending'
        detail = `not consumed yet (the target is at offset ${committed} of partition ${latest.partition})`
      }
      const plan = applyPlan(target, latest)
      targets.push({ target: target.name, status, detail, events, ...(plan === undefined ? {} : { plan }) })
    } finally {
      await store.close()
    }
  }
  return {
    id: latest.id,
    namespace: log.namespace,
    key: latest.key,
    createdAt: formatCreatedAt(latest.createdAtMs),
    writes: records.map((r) => ({
      partition: r.partition,
      offset: r.offset,
      appendedAt: new Date(r.appendedAtMs).toISOString(),
      target: r.target,
      notBefore: r.notBeforeMs === null ? null : new Date(r.notBeforeMs).toISOString(),
      replay: Number(r.headers[REPLAYS_HEADER] ?? 0),
    })),
    targets,
  }
}

export async function explain(options: ExplainOptions): Promise<ExplainReport> {
  const config = await loadConfig({ configPath: options.configPath, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
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
    } finally {
      await log.close()
    }
  }
  throw new NotFoundError(`no mutation ${options.id} in ${options.namespace === undefined ? 'any namespace' : `namespace "${options.namespace}"`}`, {
    code: 'WAL_MUTATION_NOT_FOUND',
    suggestions: ['the id is the one produce printed (id=…), or the "id" of an envelope from wal tail --json'],
  })
}
