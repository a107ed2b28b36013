/**
 * `wal tail`: read a namespace's log. Bounded by default: `--until end` snapshots the high marks when it
 * starts, so it ends even while producers keep writing. `--json` prints envelopes that `wal produce`
 * accepts back unchanged; a record that cannot be decoded is printed marked (`POISON`; with `--json`,
 * a JSON line with `error` and the stored bytes in `raw`), and tail goes on.
 */
import { setTimeout as sleep } from 'node:timers/promises'

import { loadConfig, namespaceSettings } from '../config/load.js'
import { isoTime } from '../envelope/created-at.js'
import { encodeEnvelope, encodePoisonRecord, type LogRecord } from '../envelope/envelope.js'
import { InterruptedError, NotFoundError, UsageError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import { writeText } from '../io/lines.js'
import type { NamespaceSettings, ResolvedConfig } from '../config/schema.js'
import type { LogBackend, Positions } from '../log/backend.js'
import { openLog } from '../log/open.js'
import { longTimeout, parsePointInTimeMs } from '../time.js'
import { escapeControl, escapeLine } from '../cli/render.js'
import { compileRecordWhere } from '../dlq/filter.js'

export interface TailOptions extends CommonOptions {
  namespace?: string
  /** `beginning` | `end` | OFFSET | `P:OFFSET` | TIME. */
  from?: string
  /** `end` | TIME. Defaults to `end` unless following. */
  until?: string
  max?: number
  key?: string
  /** An expression in the `dlq --where` language over each record (key, headers, payload, offsets, times). */
  where?: string
  /** A kcat-like line format (`%k %s\n`), or `json` (the same as --json). */
  format?: string
  follow?: boolean
  signal?: AbortSignal
}

export interface TailSummary {
  records: number
}

type Bound =
  | { kind: 'beginning' }
  | { kind: 'end' }
  | { kind: 'offset'; offset: number; partition?: number }
  | { kind: 'time'; timeMs: number }
  /** The last `count` records: of the whole log (in time order), or of one partition. */
  | { kind: 'last'; count: number; partition?: number }

function parseFrom(text: string, nowMs: number): Bound {
  if (text === 'beginning') return { kind: 'beginning' }
  if (text === 'end') return { kind: 'end' }
  if (/^\d{1,15}$/.test(text)) return { kind: 'offset', offset: Number(text) }
  const partitioned = /^(\d{1,6}):(\d{1,15})$/.exec(text)
  if (partitioned) return { kind: 'offset', partition: Number(partitioned[1]), offset: Number(partitioned[2]) }
  const last = /^-(\d{1,15})$/.exec(text)
  if (last) return { kind: 'last', count: Number(last[1]) }
  const lastOf = /^(\d{1,6}):-(\d{1,15})$/.exec(text)
  if (lastOf) return { kind: 'last', partition: Number(lastOf[1]), count: Number(lastOf[2]) }
  const timeMs = parsePointInTimeMs(text, nowMs)
  if (timeMs !== undefined) return { kind: 'time', timeMs }
  throw new UsageError(`--from "${text}" is not a position`, {
    suggestions: ['use beginning, end, an offset (42, or 3:42 for partition 3), the last N (-5, or 3:-5 for partition 3), an ISO time, or a duration ago (15m)'],
  })
}

function parseUntil(text: string, nowMs: number): Bound {
  if (text === 'end') return { kind: 'end' }
  const timeMs = parsePointInTimeMs(text, nowMs)
  if (timeMs !== undefined) return { kind: 'time', timeMs }
  throw new UsageError(`--until "${text}" is not a position`, { suggestions: ['use end, an ISO time, or a duration ago (15m)'] })
}

async function startPositions(log: LogBackend, from: Bound): Promise<Map<number, number>> {
  const marks = await log.marks()
  switch (from.kind) {
    case 'beginning':
      return new Map(marks.map((m) => [m.partition, m.low]))
    case 'end':
      return new Map(marks.map((m) => [m.partition, m.high]))
    case 'time':
      return log.offsetsForTime(from.timeMs)
    case 'offset': {
      if (from.partition !== undefined && from.partition >= log.partitions) {
        throw new UsageError(`--from ${from.partition}:${from.offset}: namespace "${log.namespace}" has partitions 0 to ${log.partitions - 1}`)
      }
      const chosen = from.partition === undefined ? marks : marks.filter((m) => m.partition === from.partition)
      return new Map(chosen.map((m) => [m.partition, Math.max(m.low, from.offset)]))
    }
    case 'last': {
      if (from.partition !== undefined && from.partition >= log.partitions) {
        throw new UsageError(`--from ${from.partition}:-${from.count}: namespace "${log.namespace}" has partitions 0 to ${log.partitions - 1}`)
      }
      // Each partition holds at most `count` of the last `count` records of the log.
      const chosen = from.partition === undefined ? marks : marks.filter((m) => m.partition === from.partition)
      return new Map(chosen.map((m) => [m.partition, Math.max(m.low, m.high - from.count)]))
    }
  }
}

async function endPositions(log: LogBackend, until: Bound): Promise<Positions> {
  if (until.kind === 'time') return log.offsetsForTime(until.timeMs)
  return new Map((await log.marks()).map((m) => [m.partition, m.high]))
}

/** One record as a line of text: the non-JSON output of `wal tail`, and a row of its live view. */
export function formatText(record: LogRecord): string {
  if (record.poison) {
    const raw = record.payload.encoding === 'base64' ? Buffer.from(record.payload.bytes).toString('base64') : ''
    return `${isoTime(record.appendedAtMs)} ${record.partition}:${record.offset} POISON key=${JSON.stringify(record.key)} error=${JSON.stringify(record.poison.error)} raw=base64:${raw}\n`
  }
  const payload =
    record.payload.encoding === 'json' ? record.payload.json : `base64:${Buffer.from(record.payload.bytes).toString('base64')}`
  const headers = Object.entries(record.headers)
    .map(([k, v]) => ` ${k}=${JSON.stringify(v)}`)
    .join('')
  const delayed = record.notBeforeMs === null ? '' : ` notBefore=${new Date(record.notBeforeMs).toISOString()}`
  return `${escapeLine(`${isoTime(record.appendedAtMs)} ${record.partition}:${record.offset} key=${JSON.stringify(record.key)}${headers}${delayed} ${payload}`)}\n`
}

/** A kcat-like format, compiled: literal text (its `\n`, `\t`, `\r`, `\\` escapes made) and placeholders. */
type FormatPart = string | { placeholder: string }

const PLACEHOLDERS: Record<string, string> = {
  k: 'key',
  s: 'payload',
  h: 'headers (name=value,…)',
  p: 'partition',
  o: 'offset',
  T: 'time appended, in ms since the epoch',
  i: 'mutation id',
  t: 'namespace',
}

export function compileFormat(format: string): FormatPart[] {
  const parts: FormatPart[] = []
  let text = ''
  for (let i = 0; i < format.length; i++) {
    const c = format[i]!
    const next = format[i + 1]
    if (c === '\\' && next !== undefined && 'ntr\\'.includes(next)) {
      text += next === 'n' ? '\n' : next === 't' ? '\t' : next === 'r' ? '\r' : '\\'
      i++
    } else if (c === '%' && next === '%') {
      text += '%'
      i++
    } else if (c === '%') {
      if (next === undefined || !(next in PLACEHOLDERS)) {
        throw new UsageError(`--format: ${next === undefined ? 'a lone % at the end' : `unknown placeholder %${escapeLine(next)}`}`, {
          suggestions: [`placeholders: ${Object.entries(PLACEHOLDERS).map(([k, v]) => `%${k} ${v}`).join(', ')}; %% for a %; escapes \\n \\t \\r \\\\; or --format json`],
        })
      }
      if (text) parts.push(text)
      text = ''
      parts.push({ placeholder: next })
      i++
    } else text += c
  }
  if (text) parts.push(text)
  return parts
}

function placeholderValue(placeholder: string, record: LogRecord, namespace: string): string {
  switch (placeholder) {
    case 'k':
      return record.key
    case 's':
      if (record.poison) return `POISON ${record.poison.error}`
      return record.payload.encoding === 'json' ? record.payload.json : `base64:${Buffer.from(record.payload.bytes).toString('base64')}`
    case 'h':
      return Object.entries(record.headers)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
    case 'p':
      return String(record.partition)
    case 'o':
      return String(record.offset)
    case 'T':
      return String(record.appendedAtMs)
    case 'i':
      return record.id
    default:
      return namespace
  }
}

/**
 * One record through a compiled --format. Each value goes through the terminal sanitizer on its own
 * (a newline or an escape sequence in a key shows escaped); only the format's own text is left as given.
 */
export function formatRecord(parts: readonly FormatPart[], record: LogRecord, namespace: string): string {
  let out = ''
  for (const part of parts) out += typeof part === 'string' ? escapeControl(part) : escapeLine(placeholderValue(part.placeholder, record, namespace))
  return out
}

/**
 * Time order across partitions: the log's append time; within one group commit (one append time),
 * createdAt, which a producer makes strictly increasing; then the position.
 */
function byTime(a: LogRecord, b: LogRecord): number {
  return a.appendedAtMs - b.appendedAtMs || a.createdAtMs - b.createdAtMs || a.partition - b.partition || a.offset - b.offset
}

/**
 * The core stream of `wal tail`, apart from how it is shown: the matching records in log order, ended
 * at --until/--max, when the caller's signal aborts, or on `stop()`.
 */
export interface TailSource {
  namespace: string
  records: AsyncIterable<LogRecord>
  /** Ends the stream at the next record (a live view's "quit"). */
  stop(): void
  close(): Promise<void>
}

/** Validates the options and opens the log; null when a declared namespace has no log yet (it is empty). */
export async function openTail(options: TailOptions): Promise<TailSource | null> {
  if (options.max !== undefined && options.max < 1) throw new UsageError('--max must be 1 or more')
  if (options.format !== undefined && options.format !== 'json') {
    if (options.json) throw new UsageError('give --json or --format, not both', { suggestions: ['--format json is the same as --json'] })
    compileFormat(options.format)
  }
  const nowMs = Date.now()
  let from = parseFrom(options.from ?? (options.follow ? 'end' : 'beginning'), nowMs)
  const until = options.until === undefined ? (options.follow ? undefined : ({ kind: 'end' } as const)) : parseUntil(options.until, nowMs)
  if (until?.kind === 'time' && until.timeMs > nowMs && !options.follow) {
    throw new UsageError(`--until ${options.until} is in the future`, { suggestions: ['add --follow to wait until then'] })
  }
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const settings = namespaceSettings(config, options.namespace)
  const where = options.where === undefined ? undefined : compileRecordWhere(options.where)
  if (settings.backend === 'sqs' && (from.kind === 'offset' || from.kind === 'time' || from.kind === 'last' || until?.kind === 'time')) {
    throw new UsageError(`namespace "${settings.name}" is on SQS: a queue has no offsets and no history, so --from and --until take only beginning/end`, {
      suggestions: ['wal tail -n NS peeks at what is queued now; add --follow to keep watching for new messages'],
    })
  }
  const opened = await openOrWait(config, settings, options)
  if (opened === null) return null
  const log = opened.log
  // Waited for the log to be created: its first mutations are what the user waited for.
  if (opened.waited && options.from === undefined) from = { kind: 'beginning' }
  const controller = new AbortController()
  const onAbort = (): void => controller.abort()
  options.signal?.addEventListener('abort', onAbort)
  let timer: { clear(): void } | undefined
  let start: Positions
  let end: Positions | undefined
  /** With --from -N over every partition: the end as it was at start, where the last N are counted. */
  let lastEnd: Positions | undefined
  try {
    start = await startPositions(log, from)
    if (from.kind === 'last' && from.partition === undefined) lastEnd = new Map((await log.marks()).map((m) => [m.partition, m.high]))
    // A future --until TIME with --follow: follow, and stop when that time comes.
    if (until && !(until.kind === 'time' && until.timeMs > nowMs)) end = await endPositions(log, until)
    // A far --until (years ahead) is more than one timer takes: re-armed until it comes.
    else if (until) timer = longTimeout(() => controller.abort(), until.timeMs - nowMs)
  } catch (error) {
    options.signal?.removeEventListener('abort', onAbort)
    await log.close()
    throw error
  }
  const wanted = (record: LogRecord): boolean => (options.key === undefined || record.key === options.key) && (where === undefined || where(record))
  async function* read(): AsyncGenerator<LogRecord> {
    let position = start
    if (lastEnd !== undefined && from.kind === 'last') {
      // The last N of the whole log: at most N from each partition, then the latest N of those in time order.
      const bounded = new Map([...lastEnd].map(([p, high]) => [p, Math.min(high, end?.get(p) ?? high)]))
      const candidates: LogRecord[] = []
      for await (const record of log.read({ from: start, until: bounded, signal: controller.signal })) candidates.push(record)
      yield* candidates.sort(byTime).slice(-from.count)
      if (!options.follow) return
      position = bounded
    }
    yield* log.read({ from: position, until: end, follow: options.follow, signal: controller.signal })
  }
  async function* records(): AsyncGenerator<LogRecord> {
    let count = 0
    for await (const record of read()) {
      if (!wanted(record)) continue
      count++
      yield record
      if (options.max !== undefined && count >= options.max) return
    }
  }
  return {
    namespace: log.namespace,
    records: records(),
    stop: () => controller.abort(),
    async close() {
      timer?.clear()
      options.signal?.removeEventListener('abort', onAbort)
      await log.close()
    },
  }
}

/** How often `tail --follow` looks for the log of a namespace nobody produced to yet. */
const LOG_WAIT_MS = 250

/**
 * Opens the namespace's log. Null when a declared namespace has none yet (it is simply empty). With
 * --follow, an embedded namespace without a log is waited for (its first produce creates it), saying so
 * once on stderr, until the signal aborts.
 */
async function openOrWait(config: ResolvedConfig, settings: NamespaceSettings, options: TailOptions): Promise<{ log: LogBackend; waited: boolean } | null> {
  let waited = false
  for (;;) {
    try {
      return { log: await openLog(config, settings, { create: false }), waited }
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error
      if (!options.follow || settings.backend !== 'embedded') {
        if (settings.declared) return null
        throw error
      }
    }
    if (!waited) options.io.stderr.write(`wal: namespace "${escapeLine(settings.name)}" has no log yet: waiting for its first mutation (Ctrl-C to stop)\n`)
    waited = true
    await sleep(LOG_WAIT_MS, undefined, { signal: options.signal }).catch(() => undefined)
    if (options.signal?.aborted) throw new InterruptedError('interrupted after 0 records, before the namespace had a log')
  }
}

/** Whether a live view can run: following, not --json, and a terminal on both ends. */
function interactive(options: TailOptions): boolean {
  return Boolean(options.follow && !options.json && options.format === undefined && (options.io.stdout as { isTTY?: boolean }).isTTY && options.io.stdin.isTTY)
}

export async function tail(options: TailOptions): Promise<TailSummary> {
  const source = await openTail(options)
  if (source === null) return { records: 0 }
  try {
    if (interactive(options)) {
      // ink and React load only here, so piped and --json tails (and every other command) never pay for them.
      const { renderTailView } = await import('../views/tail/render-tail-view.js')
      const { explain } = await import('../explain/explain.js')
      const outcome = await renderTailView({
        source,
        io: options.io,
        lookup: (id) => explain({ configPath: options.configPath, json: false, io: options.io, id, namespace: source.namespace }),
      })
      // ctrl-c in the view, or SIGINT/SIGTERM from outside: an interrupted tail, as without the view.
      if (outcome.interrupted || options.signal?.aborted) throw new InterruptedError(`interrupted after ${outcome.records} records`)
      return { records: outcome.records }
    }
    let records = 0
    let out = ''
    const stdout = options.io.stdout
    const json = options.json || options.format === 'json'
    const format = options.format === undefined || json ? undefined : compileFormat(options.format)
    for await (const record of source.records) {
      out += json ? `${record.poison ? encodePoisonRecord(record) : encodeEnvelope(record)}\n` : format ? formatRecord(format, record, source.namespace) : formatText(record)
      records++
      if (out.length > 64 * 1024 || options.follow) {
        if (!(await writeText(stdout, out))) break
        out = ''
      }
    }
    await writeText(stdout, out)
    if (options.signal?.aborted && options.until === undefined && options.follow) throw new InterruptedError(`interrupted after ${records} records`)
    return { records }
  } finally {
    await source.close()
  }
}
