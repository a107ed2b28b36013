/**
 * `wal skip ID…` (and `--undo`): marks mutations that consumers must not apply — at one target, or at
 * any — in the namespace's durable state. Consumers read the list as they run (at each lease heartbeat),
 * so it also holds for replays from earlier offsets; each skipped mutation gets a "skipped" step in its
 * history (`wal explain`), and each change an audit line (`wal dlq audit`).
 */
import { loadConfig, namespaceSettings } from '../config/load.js'
import { actor } from '../dlq/dlq.js'
import { ULID_PATTERN } from '../envelope/id.js'
import { UsageError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import type { SkipEntry } from '../log/backend.js'
import { openLog } from '../log/open.js'

/** A reason longer than this is refused (it is stored with every entry and shown in explain). */
export const MAX_SKIP_REASON_CHARS = 1000

/** Ids looked up in the log to report those it does not hold. */
const MAX_IDS_LOOKED_UP = 20

export interface SkipOptions extends CommonOptions {
  namespace?: string
  ids: readonly string[]
  /** Only at this target; undefined: at every target. */
  target?: string
  reason?: string
  /** Take the marks off again. */
  undo: boolean
}

export interface SkipResult {
  namespace: string
  ids: string[]
  target: string | null
  reason: string | null
  undone: boolean
  /** Entries added, or (undo) removed. */
  changed: number
  /** Ids the log holds no record of, of the first 20 (marked all the same: a replay may bring them). */
  notInLog: string[]
}

/** `wal skip --list`: the marks of a namespace (of one target and the every-target ones, with --target). */
export async function listSkips(options: CommonOptions & { namespace?: string; target?: string }): Promise<{ namespace: string; skips: SkipEntry[] }> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const settings = namespaceSettings(config, options.namespace)
  if (settings.backend === 'sqs') return { namespace: settings.name, skips: [] }
  const log = await openLog(config, settings, { create: false })
  try {
    const list = await log.skipList?.()
    if (!list) return { namespace: settings.name, skips: [] }
    const all = await list.entries().finally(() => list.close())
    return { namespace: settings.name, skips: all.filter((e) => options.target === undefined || e.target === null || e.target === options.target) }
  } finally {
    await log.close()
  }
}

export async function skip(options: SkipOptions): Promise<SkipResult> {
  if (options.ids.length === 0) throw new UsageError('name the mutations to skip', { suggestions: ['e.g. wal skip 01M80K6XFDG62PY7DFWNXXTEAH -n orders --reason "bad price"'] })
  for (const id of options.ids) {
    if (!ULID_PATTERN.test(id)) {
      throw new UsageError(`"${id.slice(0, 60)}" is not a mutation id (a 26-character ULID, as in produce acks and envelopes)`, { suggestions: ['copy the id from wal tail, wal dlq ls or a produce ack'] })
    }
  }
  if (options.reason !== undefined && options.reason.length > MAX_SKIP_REASON_CHARS) {
    throw new UsageError(`--reason is ${options.reason.length} characters; at most ${MAX_SKIP_REASON_CHARS}`)
  }
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const settings = namespaceSettings(config, options.namespace)
  if (options.target !== undefined && !settings.targets.some((t) => t.name === options.target)) {
    throw new UsageError(`namespace "${settings.name}" has no target "${options.target}"`, {
      suggestions: [`its targets: ${settings.targets.map((t) => t.name).join(', ') || '(none)'}`],
    })
  }
  const unsupported = (): UsageError =>
    new UsageError(`namespace "${settings.name}" is on ${settings.backend}, which keeps no skip list: its consumers apply a message once it is received`, {
      code: 'WAL_SKIP_UNSUPPORTED',
      suggestions: ['stop the consumers before they apply it; once dead-lettered, wal dlq purge takes it out for good'],
    })
  if (settings.backend === 'sqs') throw unsupported()
  const log = await openLog(config, settings, { create: false })
  try {
    if (!log.skipList) throw unsupported()
    const ids = [...new Set(options.ids)]
    const notInLog: string[] = []
    // A look for typos, not a check: the first few only (finding an id reads the log).
    for (const id of ids.slice(0, MAX_IDS_LOOKED_UP)) if ((await log.find(id)).length === 0) notInLog.push(id)
    const list = await log.skipList()
    const target = options.target ?? null
    const reason = options.reason ?? null
    const who = actor()
    const atMs = Date.now()
    let changed: number
    try {
      if (options.undo) changed = await list.remove(ids, target)
      else {
        await list.add(ids.map((id) => ({ id, target, reason, actor: who, atMs })))
        changed = ids.length
      }
    } finally {
      await list.close()
    }
    const dlq = await log.deadLetterQueue()
    try {
      await dlq.recordAudit({ atMs, actor: who, action: options.undo ? 'unskip' : 'skip', details: { namespace: settings.name, ids, target, ...(reason === null ? {} : { reason }), changed } })
    } finally {
      await dlq.close()
    }
    return { namespace: settings.name, ids, target, reason, undone: options.undo, changed, notInLog }
  } finally {
    await log.close()
  }
}
