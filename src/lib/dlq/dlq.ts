/**
 * `wal dlq …`: what failed (ls, show), why (stats), and putting it back safely (replay), or away (purge,
 * export). Replay moves an entry: it leaves the DLQ only once its copy is durable in the log, under an
 * idempotency key of its own, so a replay stopped at any point and run again neither drops nor
 * duplicates. A loop guard parks entries replayed too often instead of cycling them.
 */
import { hostname, userInfo } from 'node:os'
import { createInterface } from 'node:readline/promises'

import { loadConfig, namespaceSettings, rateFlag } from '../config/load.js'
import type { NamespaceSettings, ResolvedConfig } from '../config/schema.js'
import { assertStorable, encodeEnvelope, headerMap, type ErrorClass } from '../envelope/envelope.js'
import { InterruptedError, NotFoundError, UsageError } from '../errors.js'
import { plural } from '../format.js'
import type { CommonOptions } from '../io/context.js'
import { writeText } from '../io/lines.js'
import { terminalProgress, type Progress } from '../io/progress.js'
import type { AuditRecord, DeadLetterQueue, DlqEntry, LogBackend } from '../log/backend.js'
import { openLog } from '../log/open.js'
import { RateLimiter } from '../pipeline/rate-limiter.js'
import { dlqFilter, type DlqFilter, type DlqFilterOptions } from './filter.js'
import { REPLAYS_HEADER, replaysOf } from './replays.js'

export { REPLAYS_HEADER, replaysOf }

export const DEFAULT_MAX_REPLAYS = 3
const PAGE = 500

export interface DlqOptions extends CommonOptions, DlqFilterOptions {
  namespace?: string
}

/** An entry as `ls`, `show` and `--json` print it. */
export interface DlqListing {
  seq: number
  /**
   * The entry's id, the same in every command: its seq where that is stable (embedded, Kafka), its
   * MessageId on SQS (where seq is its place in this command's snapshot). `dlq show` takes either.
   */
  entry: string
  id: string
  key: string
  target: string
  errorClass: ErrorClass
  code: string
  message: string
  deadAt: string
  attempts: number
  replays: number
  parked: boolean
}

export function listing(entry: DlqEntry): DlqListing {
  return {
    seq: entry.seq,
    entry: entry.ref ?? String(entry.seq),
    id: entry.mutation.id,
    key: entry.mutation.key,
    target: entry.target,
    errorClass: entry.errorClass,
    code: entry.code,
    message: entry.message,
    deadAt: new Date(entry.deadAtMs).toISOString(),
    attempts: entry.mutation.attempts,
    replays: replaysOf(entry.mutation),
    parked: entry.parked,
  }
}

interface Opened {
  config: ResolvedConfig
  settings: NamespaceSettings
  log: LogBackend
  dlq: DeadLetterQueue
  filter: DlqFilter
}

async function open(options: DlqOptions): Promise<Opened> {
  const filter = dlqFilter(options)
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const settings = namespaceSettings(config, options.namespace)
  if (options.target !== undefined && !settings.targets.some((t) => t.name === options.target)) {
    throw new UsageError(`namespace "${settings.name}" has no target "${options.target}"`, {
      suggestions: [`its targets: ${settings.targets.map((t) => t.name).join(', ') || '(none)'}`],
    })
  }
  const log = await openLog(config, settings, { create: false })
  try {
    return { config, settings, log, dlq: await log.deadLetterQueue(), filter }
  } catch (error) {
    await log.close()
    throw error
  }
}

async function close(opened: Opened): Promise<void> {
  await opened.dlq.close()
  await opened.log.close()
}

/** Every matching entry, a page at a time, in seq order. */
async function* matching(dlq: DeadLetterQueue, filter: DlqFilter, limit = Infinity): AsyncGenerator<DlqEntry> {
  let afterSeq = 0
  let given = 0
  for (;;) {
    const page = await dlq.entries({ ...filter.query, afterSeq, limit: PAGE })
    for (const entry of page) {
      if (!filter.matches(entry)) continue
      yield entry
      if (++given >= limit) return
    }
    if (page.length < PAGE) return
    afterSeq = page.at(-1)!.seq
  }
}

/** Who ran an audited command: user@host. */
export function actor(): string {
  let user = 'unknown'
  try {
    user = userInfo().username
  } catch {
    // No passwd entry (some containers): keep "unknown".
  }
  return `${user}@${hostname()}`
}

export async function listDeadLetters(options: DlqOptions & { limit?: number }): Promise<DlqListing[]> {
  const opened = await open(options)
  try {
    const out: DlqListing[] = []
    for await (const entry of matching(opened.dlq, opened.filter, options.limit ?? Infinity)) out.push(listing(entry))
    return out
  } finally {
    await close(opened)
  }
}

/** One entry, whole: the envelope with its failure history. */
export async function showDeadLetter(options: DlqOptions & { id: string }): Promise<Array<DlqListing & { envelope: unknown }>> {
  const opened = await open(options)
  try {
    const found = /^\d+$/.test(options.id)
      ? (await opened.dlq.entries({ afterSeq: Number(options.id) - 1, limit: 1 })).filter((e) => e.seq === Number(options.id))
      : await opened.dlq.entries({ id: options.id })
    // Not a number nor a mutation id: a stable entry id (an SQS MessageId).
    if (found.length === 0 && !/^\d+$/.test(options.id)) {
      for await (const entry of matching(opened.dlq, opened.filter)) if (entry.ref === options.id) found.push(entry)
    }
    if (found.length === 0) {
      throw new NotFoundError(`no DLQ entry ${options.id} in namespace "${opened.settings.name}"`, {
        suggestions: [`list them: wal dlq ls -n ${opened.settings.name}`],
      })
    }
    return found.map((entry) => ({ ...listing(entry), envelope: JSON.parse(encodeEnvelope(entry.mutation)) as unknown }))
  } finally {
    await close(opened)
  }
}

export interface DlqStatsGroup {
  target: string
  errorClass: ErrorClass
  code: string
  count: number
  firstSeen: string
  lastSeen: string
  example: string
  parked: number
}

/** "Why did it fail": counts per target, error class and code, with first and last seen and an example. */
export async function deadLetterStats(options: DlqOptions): Promise<{ total: number; groups: DlqStatsGroup[] }> {
  const opened = await open(options)
  try {
    const groups = new Map<string, DlqStatsGroup>()
    let total = 0
    for await (const entry of matching(opened.dlq, opened.filter)) {
      total++
      const id = `${entry.target}\u0000${entry.errorClass}\u0000${entry.code}`
      const at = new Date(entry.deadAtMs).toISOString()
      const group = groups.get(id)
      if (!group) {
        groups.set(id, { target: entry.target, errorClass: entry.errorClass, code: entry.code, count: 1, firstSeen: at, lastSeen: at, example: entry.message, parked: entry.parked ? 1 : 0 })
        continue
      }
      group.count++
      if (at < group.firstSeen) group.firstSeen = at
      if (at > group.lastSeen) group.lastSeen = at
      if (entry.parked) group.parked++
    }
    return { total, groups: [...groups.values()].sort((a, b) => b.count - a.count) }
  } finally {
    await close(opened)
  }
}

/** Writes matching entries as envelopes (failure history included) that `wal produce` accepts. */
export async function exportDeadLetters(options: DlqOptions): Promise<{ exported: number }> {
  const opened = await open(options)
  try {
    let exported = 0
    let out = ''
    for await (const entry of matching(opened.dlq, opened.filter)) {
      out += `${encodeEnvelope(entry.mutation)}\n`
      exported++
      if (out.length > 64 * 1024) {
        await writeText(options.io.stdout, out)
        out = ''
      }
    }
    await writeText(options.io.stdout, out)
    return { exported }
  } finally {
    await close(opened)
  }
}

async function confirm(options: CommonOptions, question: string): Promise<boolean> {
  if (!options.io.stdin.isTTY) return false
  const rl = createInterface({ input: options.io.stdin, output: options.io.stderr })
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim())
  } finally {
    rl.close()
  }
}

/** What `wal dlq purge` did: how many entries matched its filter, of how many, and how many it removed. */
export interface PurgeResult {
  purged: number
  matched: number
  total: number
}

/**
 * Removes the matching entries. Asks first (a terminal) unless `yes`; a filter that matches every entry
 * (a typo in --where, a key that is everywhere) is asked about even with `yes`, and refused without a
 * terminal, unless `all` says that every entry is meant.
 */
export async function purgeDeadLetters(options: DlqOptions & { yes?: boolean; all?: boolean }): Promise<PurgeResult> {
  const opened = await open(options)
  try {
    const seqs: number[] = []
    for await (const entry of matching(opened.dlq, opened.filter)) seqs.push(entry.seq)
    let total = 0
    for await (const _ of matching(opened.dlq, { ...opened.filter, query: {}, matches: () => true })) total++
    const result = { purged: 0, matched: seqs.length, total }
    if (seqs.length === 0) return result
    const filtered = Object.keys(opened.filter.description).length > 0
    const scope = filtered ? ` matching ${JSON.stringify(opened.filter.description)}` : ''
    const everything = filtered && seqs.length === total && !options.all
    if (!options.json) options.io.stderr.write(`wal: ${seqs.length} of ${plural(total, 'DLQ entry', 'DLQ entries')} of namespace "${opened.settings.name}" match${everything ? ': every entry' : ''}\n`)
    if (!options.yes || everything) {
      const question = everything
        ? `The filter${scope} matches every entry (${total}). Delete the whole DLQ of namespace "${opened.settings.name}"? This cannot be undone.`
        : `Delete ${seqs.length} of ${plural(total, 'DLQ entry', 'DLQ entries')} of namespace "${opened.settings.name}"${scope}? This cannot be undone.`
      const ok = await confirm(options, question)
      if (!ok) {
        throw new UsageError(`not purged: ${plural(seqs.length, 'entry stays', 'entries stay')} in the DLQ${everything ? ` (the filter matches every entry, ${total})` : ''}`, {
          code: everything ? 'WAL_PURGE_ALL' : undefined,
          suggestions: [
            ...(everything ? ['check the filter (a typo in --where can match everything); to purge every entry, add --all'] : []),
            options.io.stdin.isTTY ? 'answer y to purge' : 'add --yes to purge without a prompt (no terminal to ask on)',
            'keep a copy first: wal dlq export',
          ],
        })
      }
    }
    const purged = await opened.dlq.remove(seqs)
    await opened.dlq.recordAudit({ atMs: Date.now(), actor: actor(), action: 'purge', details: { namespace: opened.settings.name, filter: opened.filter.description, purged } })
    return { ...result, purged }
  } finally {
    await close(opened)
  }
}

export interface ReplayOptions extends DlqOptions {
  toNamespace?: string
  toTarget?: string
  rate?: string
  dryRun?: boolean
  maxReplays?: number
  /** Also replay entries the loop guard parked (or would park): the operator's call, recorded in the audit line. */
  includeParked?: boolean
  signal?: AbortSignal
}

export interface ReplayPlan {
  dryRun: boolean
  namespace: string
  toNamespace: string
  /** Per target (as replayed to) and error class: how many. */
  groups: Array<{ target: string; errorClass: ErrorClass; count: number }>
  replayed: number
  /** Held back by the loop guard in this run: replayed too often already. */
  parked: number
  /**
   * Poison entries (records that could not be decoded): never replayed, since their payload is the
   * stored bytes, not a mutation. They stay in the DLQ: export, repair and produce them, then purge.
   */
  poison: number
  /** Matching entries left out because they were parked already (--include-parked replays them). */
  parkedLeftOut: number
  /** Parked entries replayed (with --include-parked). */
  unparked: number
  interrupted: boolean
}

/** Puts matching entries back into the log for their target (or another), with --rate and a loop guard. */
export async function replayDeadLetters(options: ReplayOptions): Promise<ReplayPlan> {
  const maxReplays = options.maxReplays ?? DEFAULT_MAX_REPLAYS
  const rate = rateFlag(options.rate)
  const opened = await open(options)
  let destination: LogBackend = opened.log
  let bar: Progress | null = null
  try {
    const toSettings = options.toNamespace === undefined ? opened.settings : namespaceSettings(opened.config, options.toNamespace)
    if (options.toTarget !== undefined && !toSettings.targets.some((t) => t.name === options.toTarget)) {
      throw new UsageError(`namespace "${toSettings.name}" has no target "${options.toTarget}"`, {
        suggestions: [`its targets: ${toSettings.targets.map((t) => t.name).join(', ') || '(none)'}`],
      })
    }
    if (toSettings.name !== opened.settings.name) destination = await openLog(opened.config, toSettings, { create: true })
    const plan: ReplayPlan = { dryRun: options.dryRun ?? false, namespace: opened.settings.name, toNamespace: toSettings.name, groups: [], replayed: 0, parked: 0, poison: 0, parkedLeftOut: 0, unparked: 0, interrupted: false }
    const groups = new Map<string, ReplayPlan['groups'][number]>()
    const limiter = rate === null ? undefined : new RateLimiter(rate)
    const destinationTargets = new Set(toSettings.targets.map((t) => t.name))
    /**
     * Where a copy is addressed: --to-target, else the target it failed at — when the destination has a
     * target of that name. An entry the backend dead-lettered without a target (SQS moving a message
     * after maxReceiveCount) goes back as it was addressed (every target, usually: applies are
     * idempotent, so the targets that did apply it take it again without effect), and a copy into
     * another namespace without such a target goes to all of that namespace's targets.
     */
    const replayTarget = (e: DlqEntry): string | null => {
      if (options.toTarget !== undefined) return options.toTarget
      if (e.replayTarget !== undefined) return e.replayTarget
      return destinationTargets.has(e.target) || toSettings.name === opened.settings.name ? e.target : null
    }
    const started = Date.now()
    // On a terminal's stderr, a bar with rate and ETA (counting what matches takes one more pass over
    // the DLQ, so only there); elsewhere the count lines below, as before.
    if (!plan.dryRun && (options.io.stderr as { isTTY?: boolean }).isTTY) {
      let total = 0
      for await (const entry of matching(opened.dlq, opened.filter)) if (!entry.parked || options.includeParked) total++
      bar = await terminalProgress(options.io, { label: 'replay', unit: 'entries', total })
    }
    let lastProgress = 0
    let lastReported = ''
    const progress = (force = false): void => {
      const now = Date.now()
      if (plan.dryRun || bar || (!force && now - lastProgress < 1000)) return
      // The closing line is not a repeat of one just printed.
      if (force && lastReported === `${plan.replayed}/${plan.parked}`) return
      lastProgress = now
      lastReported = `${plan.replayed}/${plan.parked}`
      const perSecond = plan.replayed / Math.max(0.001, (now - started) / 1000)
      options.io.stderr.write(`wal: replayed ${plan.replayed}, parked ${plan.parked} (${Math.round(perSecond)}/s)\n`)
    }
    let batch: DlqEntry[] = []
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return
      const entries = batch
      batch = []
      // With --include-parked the operator overrides the loop guard for what they selected.
      const held = (e: DlqEntry): boolean => !options.includeParked && replaysOf(e.mutation) >= maxReplays
      const park = entries.filter(held)
      const replay = entries.filter((e) => !held(e))
      plan.parked += park.length
      plan.unparked += replay.filter((e) => e.parked).length
      for (const e of replay) {
        const target = replayTarget(e) ?? '(all)'
        const id = `${target}\u0000${e.errorClass}`
        const group = groups.get(id) ?? { target, errorClass: e.errorClass, count: 0 }
        group.count++
        groups.set(id, group)
      }
      if (plan.dryRun) {
        plan.replayed += replay.length
        return
      }
      await opened.dlq.park(park.map((e) => e.seq))
      try {
        if (limiter) for (let i = 0; i < replay.length; i++) await limiter.take(options.signal)
      } catch (error) {
        if (!options.signal?.aborted) throw error
        // Stopped while pacing: this batch stays in the DLQ for the next run.
        plan.interrupted = true
        return
      }
      // The copy is durable before the entry leaves the DLQ; its idempotency key makes a rerun after
      // a crash in between write nothing twice.
      const copies = replay.map((e) => ({
        ...e.mutation,
        namespace: toSettings.name,
        target: replayTarget(e),
        attempts: 0,
        notBeforeMs: null,
        idempotencyKey: `dlq-replay:${opened.settings.name}:${e.ref ?? e.seq}`,
        headers: Object.assign(headerMap(e.mutation.headers), { [REPLAYS_HEADER]: String(replaysOf(e.mutation) + 1) }),
      }))
      // Through the door like any other way in: a copy no backend or reader could hold is not written.
      for (const copy of copies) assertStorable(copy)
      await destination.append(copies)
      await opened.dlq.remove(replay.map((e) => e.seq))
      plan.replayed += replay.length
      bar?.emitter.add(replay.length + park.length)
      progress()
    }
    const batchSize = limiter && rate !== null ? Math.max(1, Math.min(PAGE, Math.floor(rate))) : PAGE
    for await (const entry of matching(opened.dlq, opened.filter)) {
      if (options.signal?.aborted) {
        plan.interrupted = true
        break
      }
      // Neither can be applied: a poison record has nothing to apply, an aborted transaction must not be.
      if (entry.errorClass === 'poison' || entry.errorClass === 'txn-aborted') {
        plan.poison++
        continue
      }
      if (entry.parked && !options.includeParked) {
        plan.parkedLeftOut++
        continue
      }
      batch.push(entry)
      if (batch.length >= batchSize) await flush()
    }
    if (!options.signal?.aborted || plan.dryRun) await flush()
    else plan.interrupted = true
    plan.groups = [...groups.values()].sort((a, b) => b.count - a.count)
    if (!plan.dryRun) {
      progress(true)
      await opened.dlq.recordAudit({
        atMs: Date.now(),
        actor: actor(),
        action: 'replay',
        details: { namespace: plan.namespace, toNamespace: plan.toNamespace, toTarget: options.toTarget ?? null, filter: opened.filter.description, replayed: plan.replayed, parked: plan.parked, includeParked: options.includeParked ?? false, unparked: plan.unparked, parkedLeftOut: plan.parkedLeftOut, interrupted: plan.interrupted },
      })
    }
    if (plan.interrupted) {
      throw new InterruptedError(`replay interrupted: ${plan.replayed} replayed, ${plan.parked} parked; the rest is still in the DLQ`, {
        suggestions: ['run the same replay again to finish: replayed entries are no longer in the DLQ, so nothing is replayed twice'],
        details: { ...plan },
      })
    }
    return plan
  } finally {
    await bar?.close()
    if (destination !== opened.log) await destination.close()
    await close(opened)
  }
}

export async function auditLog(options: CommonOptions & { namespace?: string; limit?: number }): Promise<AuditRecord[]> {
  const opened = await open({ ...options })
  try {
    return await opened.dlq.audit(options.limit ?? 100)
  } finally {
    await close(opened)
  }
}
