/**
 * `wal produce`: one mutation from flags, or NDJSON envelopes from stdin. Acks a mutation only once the
 * backend says it is durable. A bad line is reported with its number and skipped; it never stops or
 * corrupts the good ones around it.
 */
import { fstatSync } from 'node:fs'
import { isUtf8 } from 'node:buffer'
import { setTimeout as sleep } from 'node:timers/promises'

import { loadConfig, namespaceSettings, rateFlag } from '../config/load.js'
import type { ResolvedConfig } from '../config/schema.js'
import { CreatedAtClock } from '../envelope/created-at.js'
import {
  decodeEnvelope,
  decodeEnvelopeLine,
  headerBytes,
  headerMap,
  parsePayloadText,
  MAX_HEADER_BYTES,
  RESERVED_HEADER_HINT,
  reservedHeader,
  payloadBytes,
  type DecodeDefaults,
  type Mutation,
} from '../envelope/envelope.js'
import { BackendUnavailableError, ConfigError, DurabilityUnknownError, InputRejectedError, InterruptedError, InvalidRecordError, NotFoundError, UsageError, WalError } from '../errors.js'
import { formatBytes, plural } from '../format.js'
import type { CommonOptions } from '../io/context.js'
import { MAX_LINE_BYTES, readFileUpTo, readLineChunks, writeText, type NumberedLine } from '../io/lines.js'
import { terminalProgress, type Progress, type ProgressEmitter } from '../io/progress.js'
import type { AppendResult, LogBackend } from '../log/backend.js'
import { openLog } from '../log/open.js'
import { RateLimiter } from '../pipeline/rate-limiter.js'
import { MAX_TIME_MS, MIN_TIME_MS, parseDurationMs, parseIsoTimeMs, timeInRange } from '../time.js'
import { escapeControl, escapeLine } from '../cli/render.js'
import { TxnBook, type OpenTxn } from '../txn/book.js'
import { newTxnId, txnOf } from '../txn/txn.js'

/** A group commit holds at most this many mutations… */
export const MAX_BATCH_RECORDS = 1000
/** …or this many characters of input. */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024
/** How long a partial batch waits for more input before it is committed (like Kafka's linger.ms). */
export const LINGER_MS = 2
/**
 * Batches flushed and not yet acked while the next one is prepared: one appending and one waiting its
 * turn (appends go one after the other), so the next append starts as soon as one ends. More only held
 * their lines and mutations in memory longer (survivors the garbage collector copies): 100k lines cost
 * about 12% more CPU with 4. Where an append blocks the thread (the embedded log committing in
 * process) there is nothing to overlap, and a batch is acked before the next is read.
 */
export const MAX_IN_FLIGHT = 2

export interface ProduceOptions extends CommonOptions {
  namespace?: string
  /** The namespace of lines that name none when -n is not given (the config's defaultNamespace). */
  defaultNamespace?: string
  key?: string
  /** `-p`: the payload as JSON text. */
  payload?: string
  payloadFile?: string
  /** `-H name=value`, repeatable. */
  headers?: readonly string[]
  delay?: string
  at?: string
  jitter?: string
  idempotencyKey?: string
  target?: string
  /** `--rate R/s`: stdin lines written at most this fast (smoothing bulk writes from scripts). */
  rate?: string
  /** `--txn`: every line of stdin is a part of one transaction, whose marker is written at the end of the input. */
  txn?: boolean
  /** Stops reading stdin; what was read is still committed and acked. */
  signal?: AbortSignal
}

export interface ProduceSummary {
  durable: number
  duplicates: number
  rejected: number
  /** Group commits (transactions / broker requests) it took. */
  commits: number
}

interface Entry {
  lineNumber: number
  mutation?: Mutation
  error?: WalError
  result?: AppendResult
}

function parseHeaders(headers: readonly string[] = []): Record<string, string> | undefined {
  if (headers.length === 0) return undefined
  // Any name a user gives (`-H __proto__=x` too) is a header: an object without a prototype keeps it.
  const out = headerMap()
  for (const header of headers) {
    const at = header.indexOf('=')
    if (at <= 0) {
      throw new UsageError(`header "${header}" is not name=value`, { suggestions: ['write headers as -H name=value'] })
    }
    const name = header.slice(0, at)
    if (reservedHeader(name)) throw new UsageError(`header "${escapeControl(name)}" (-H) is reserved`, { suggestions: [RESERVED_HEADER_HINT] })
    out[name] = header.slice(at + 1)
  }
  return out
}

/**
 * A delivery time (with its jitter) that wal can store. One that is not is the record's fault, as a
 * notBefore out of range on a line is: rejected by the door (exit 4), never written.
 */
function inRange(flag: string, delay: { baseMs: number; jitterMs: number }): { baseMs: number; jitterMs: number } {
  if (!timeInRange(delay.baseMs) || !timeInRange(delay.baseMs + delay.jitterMs)) {
    throw new InvalidRecordError(`field "notBefore": ${flag} asks for a delivery time outside ${new Date(MIN_TIME_MS).toISOString()} … ${new Date(MAX_TIME_MS).toISOString()}, the times wal stores`, {
      suggestions: ['give a shorter --delay (or --jitter), or an --at within that range'],
    })
  }
  return delay
}

/** The notBefore that --delay / --at / --jitter ask for, or undefined. */
function delayMs(options: ProduceOptions, nowMs: number): { baseMs: number; jitterMs: number } | undefined {
  const jitterMs = options.jitter === undefined ? 0 : parseDurationMs(options.jitter)
  if (jitterMs === undefined) {
    throw new UsageError(`--jitter "${options.jitter}" is not a duration`, { suggestions: ['use e.g. --jitter 30s, 15m, 2h'] })
  }
  if (options.delay !== undefined) {
    const ms = parseDurationMs(options.delay)
    if (ms === undefined) {
      throw new UsageError(`--delay "${options.delay}" is not a duration`, { suggestions: ['use e.g. --delay 90s, 15m, 3d, 1h30m'] })
    }
    return inRange(`--delay ${options.delay}`, { baseMs: nowMs + ms, jitterMs })
  }
  if (options.at !== undefined) {
    const ms = parseIsoTimeMs(options.at)
    if (ms === undefined) {
      throw new UsageError(`--at "${options.at}" is not an ISO 8601 time (or names a day that does not exist)`, { suggestions: ['use e.g. --at 2026-12-01T09:00:00Z'] })
    }
    return inRange(`--at ${options.at}`, { baseMs: ms, jitterMs })
  }
  if (jitterMs > 0) return { baseMs: nowMs, jitterMs }
  return undefined
}

/** Writes and acknowledges mutations; one instance per `wal produce` run. */
class Producer {
  private readonly logs = new Map<string, Promise<LogBackend>>()
  readonly summary: ProduceSummary = { durable: 0, duplicates: 0, rejected: 0, commits: 0 }
  private readonly rejectedLines: number[] = []
  /** Results are printed in input order even when commits overlap. */
  private printed: Promise<unknown> = Promise.resolve()
  /**
   * Appends go to the log one commit after the other, and none after one failed: a later batch must not
   * land after an earlier one was refused (a disk full for one transaction may have room for the next),
   * or "nothing from line N on was written" would be false and producing from line N again would write
   * some lines twice and out of order. Lines are still parsed while the previous batch commits.
   */
  private appended: Promise<void> = Promise.resolve()
  private appendFailure: unknown
  /** The last append committed on this thread (see LogBackend.appendBlocks): nothing gained by reading ahead. */
  appendBlocked = false

  constructor(
    private readonly config: ResolvedConfig,
    private readonly options: ProduceOptions,
  ) {}

  private log(namespace: string): Promise<LogBackend> {
    let log = this.logs.get(namespace)
    if (!log) {
      log = openLog(this.config, namespaceSettings(this.config, namespace), { create: true })
      this.logs.set(namespace, log)
      log.catch(() => this.logs.delete(namespace))
    }
    return log
  }

  /** Whether one append to this namespace's log is atomic (embedded: one SQLite transaction). */
  atomicAppend(namespace: string): boolean {
    return namespaceSettings(this.config, namespace).backend === 'embedded'
  }

  /** Checks what the envelope schema cannot: the namespace's limits. */
  check(mutation: Mutation): void {
    Producer.check(this.config, mutation)
  }

  /** The checks of `check`, without a Producer: the daemon's HTTP API uses them (as checkMutation). */
  static check(config: ResolvedConfig, mutation: Mutation): void {
    const settings = namespaceSettings(config, mutation.namespace)
    const size = payloadBytes(mutation.payload)
    if (size > settings.maxPayloadBytes) {
      throw new InvalidRecordError(
        `payload is ${formatBytes(size)}, above the ${formatBytes(settings.maxPayloadBytes)} limit of namespace "${mutation.namespace}"`,
        {
          code: 'WAL_PAYLOAD_TOO_LARGE',
          details: { bytes: size, maxPayloadBytes: settings.maxPayloadBytes },
          suggestions: [`split the payload, or raise namespaces.${mutation.namespace}.maxPayloadBytes in the config`],
        },
      )
    }
    if (mutation.target !== null && !settings.targets.some((t) => t.name === mutation.target)) {
      const names = settings.targets.map((t) => t.name)
      throw new InvalidRecordError(`namespace "${mutation.namespace}" has no target "${mutation.target}"`, {
        code: 'WAL_TARGET_UNKNOWN',
        suggestions: [names.length > 0 ? `its targets: ${names.join(', ')}` : `declare targets under namespaces.${mutation.namespace}.targets`],
      })
    }
    if (headerBytes(mutation.headers) > MAX_HEADER_BYTES) {
      throw new InvalidRecordError(`headers take more than ${formatBytes(MAX_HEADER_BYTES)}`, { code: 'WAL_HEADERS_TOO_LARGE' })
    }
  }

  /** Commits the entries' mutations (grouped per namespace), then prints one result per entry in order. */
  async commit(entries: Entry[]): Promise<void> {
    const byNamespace = new Map<string, Entry[]>()
    for (const entry of entries) {
      if (!entry.mutation) continue
      const group = byNamespace.get(entry.mutation.namespace)
      if (group) group.push(entry)
      else byNamespace.set(entry.mutation.namespace, [entry])
    }
    let failure: unknown
    const previous = this.appended
    let release!: () => void
    this.appended = new Promise<void>((resolve) => (release = resolve))
    await previous
    // An earlier batch failed: this one is not written at all (its lines are neither acked nor unknown).
    const skipped = this.appendFailure !== undefined
    if (skipped) {
      failure = this.appendFailure
      byNamespace.clear()
    }
    await Promise.all(
      [...byNamespace].map(async ([namespace, group]) => {
        try {
          const log = await this.log(namespace)
          this.appendBlocked = log.appendBlocks?.(group.length) ?? false
          const results = await log.append(group.map((e) => e.mutation!), { perEntryErrors: true })
          results.forEach((result, i) => {
            if (result.error === undefined) group[i]!.result = result
            else if (result.error instanceof InvalidRecordError) group[i]!.error = result.error
            // Written one by one (SQS): this one failed while others may have landed.
            else if (failure === undefined || (result.error instanceof DurabilityUnknownError && !(failure instanceof DurabilityUnknownError))) failure = result.error
          })
          this.summary.commits++
        } catch (error) {
          if (error instanceof WalError && !(error instanceof BackendUnavailableError) && !(error instanceof NotFoundError) && !(error instanceof ConfigError) && !error.retriable) {
            // A namespace-level problem (unknown namespace): those lines are rejected. A config problem
            // (partitions that differ from the log's, credentials refused) stops the run: exit 3.
            for (const e of group) e.error = error
          } else failure ??= error
        }
      }),
    ).finally(() => {
      this.appendFailure ??= failure
      release()
    })
    const unknown = !skipped && failure instanceof DurabilityUnknownError
    const print = this.printed.then(() => {
      let out = ''
      for (const entry of entries) {
        if (unknown && entry.mutation && !entry.result && !entry.error) {
          out += this.unknownOutcome(entry)
        } else if (entry.result) {
          out += this.ack(entry)
          if (entry.result.duplicate) this.summary.duplicates++
          else this.summary.durable++
        } else if (entry.error) {
          out += this.reject(entry)
        }
      }
      return writeText(this.options.io.stdout, out)
    })
    this.printed = print.catch(() => undefined)
    await print
    if (failure instanceof NotFoundError || failure instanceof ConfigError) throw failure
    if (unknown) {
      const lines = entries.filter((e) => e.mutation && !e.result && !e.error).map((e) => e.lineNumber)
      const error = failure as DurabilityUnknownError
      throw new DurabilityUnknownError(
        `${error.message}: ${lines.length} mutation${lines.length === 1 ? '' : 's'} (line ${lines[0]}${lines.length > 1 ? `-${lines.at(-1)}` : ''}) may or may not be in the log; ${this.summary.durable + this.summary.duplicates} earlier mutations are durable`,
        { cause: error, suggestions: error.suggestions, details: { ...this.summary, unknownLines: lines } },
      )
    }
    if (failure !== undefined) {
      const notWritten = entries.filter((e) => e.mutation && !e.result && !e.error)
      const error = failure instanceof WalError ? failure : new BackendUnavailableError(String(failure), { cause: failure })
      // Backends that write entries one by one (SQS) may have written some lines after the first failure.
      const laterWritten = entries.some((e) => e.result && e.lineNumber > (notWritten[0]?.lineNumber ?? Infinity))
      const what = laterWritten
        ? `${notWritten.length} lines were not written, the first is line ${notWritten[0]?.lineNumber ?? '?'}; the ${this.summary.durable + this.summary.duplicates} acked mutations are durable`
        : `nothing from line ${notWritten[0]?.lineNumber ?? '?'} on was written; ${this.summary.durable + this.summary.duplicates} earlier mutations are durable`
      throw new BackendUnavailableError(
        `${error.message} (${what})`,
        { code: error.code, cause: error, suggestions: error.suggestions, details: { ...this.summary, firstLineNotWritten: notWritten[0]?.lineNumber } },
      )
    }
  }

  private ack(entry: Entry): string {
    const r = entry.result!
    const txn = txnOf(entry.mutation!)
    if (txn !== undefined) {
      // A transaction's marker: its ack is the transaction's. A part says which transaction it is in.
      const fields = txn.marker ? `,"txn":${JSON.stringify(txn.id)},"commit":true,"parts":${txn.parts ?? 0}` : `,"txn":${JSON.stringify(txn.id)},"txnSeq":${txn.seq}`
      const words = txn.marker ? ` txn=${escapeLine(txn.id)} commit=true parts=${txn.parts ?? 0}` : ` txn=${escapeLine(txn.id)} txnSeq=${txn.seq}`
      const where = r.messageId !== undefined ? `"queue":${JSON.stringify(r.queue)},"messageId":${JSON.stringify(r.messageId)}` : `"offset":${r.offset}`
      if (this.options.json) {
        return `{${entry.lineNumber > 0 ? `"line":${entry.lineNumber},` : ''}"id":"${r.id}","namespace":${JSON.stringify(entry.mutation!.namespace)},"partition":${r.partition},${where}${fields},"durable":true${r.duplicate ? ',"duplicate":true' : ''}}\n`
      }
      return `${entry.lineNumber > 0 ? `line=${entry.lineNumber} ` : ''}id=${r.id} partition=${r.partition}${r.messageId !== undefined ? ` messageId=${escapeLine(r.messageId)}` : ` offset=${r.offset}`}${words} durable=true${r.duplicate ? ' duplicate=true' : ''}\n`
    }
    if (r.messageId !== undefined) {
      // SQS has no offsets: the queue and the MessageId say where the message is.
      if (this.options.json) {
        return `{"line":${entry.lineNumber},"id":"${r.id}","namespace":${JSON.stringify(entry.mutation!.namespace)},"partition":${r.partition},"queue":${JSON.stringify(r.queue)},"messageId":${JSON.stringify(r.messageId)},"durable":true}\n`
      }
      return `line=${entry.lineNumber} id=${r.id} queue=${escapeLine(r.queue ?? '')} messageId=${escapeLine(r.messageId)} durable=true\n`
    }
    if (this.options.json) {
      return `{"line":${entry.lineNumber},"id":"${r.id}","namespace":${JSON.stringify(entry.mutation!.namespace)},"partition":${r.partition},"offset":${r.offset},"durable":true${r.duplicate ? ',"duplicate":true' : ''}}\n`
    }
    return `line=${entry.lineNumber} id=${r.id} partition=${r.partition} offset=${r.offset} durable=true${r.duplicate ? ' duplicate=true' : ''}\n`
  }

  /** A mutation whose write may or may not have happened (Netflix's `durable: unknown`). */
  private unknownOutcome(entry: Entry): string {
    const m = entry.mutation!
    if (this.options.json) {
      return `{"line":${entry.lineNumber},"id":"${m.id}","namespace":${JSON.stringify(m.namespace)},"durable":"unknown"${m.idempotencyKey === null ? '' : `,"idempotencyKey":${JSON.stringify(m.idempotencyKey)}`}}\n`
    }
    return `line=${entry.lineNumber} id=${m.id} durable=unknown${m.idempotencyKey === null ? '' : ` idempotencyKey=${escapeLine(m.idempotencyKey)}`}\n`
  }

  private reject(entry: Entry): string {
    this.summary.rejected++
    this.rejectedLines.push(entry.lineNumber)
    const error = entry.error!
    if (this.options.json) {
      return `${JSON.stringify({ ...(entry.lineNumber > 0 ? { line: entry.lineNumber } : {}), durable: false, error: error.toJSON() })}\n`
    }
    const hint = error.suggestions.length > 0 ? ` (${error.suggestions[0]})` : ''
    this.options.io.stderr.write(escapeControl(`wal: ${entry.lineNumber > 0 ? `line ${entry.lineNumber}` : 'the end of the input'}: ${error.message}${hint}\n`))
    return ''
  }

  /** Throws InputRejectedError when any line was rejected. */
  finish(total: number): ProduceSummary {
    if (this.summary.rejected > 0) {
      const shown = this.rejectedLines.slice(0, 10).join(', ') + (this.rejectedLines.length > 10 ? ', …' : '')
      throw new InputRejectedError(
        `${this.summary.rejected} of ${total} ${total === 1 ? 'mutation was' : 'mutations were'} rejected (line ${shown}); the other ${this.summary.durable + this.summary.duplicates} are durable`,
        { details: { ...this.summary }, suggestions: ['fix the rejected lines and produce just those again'] },
      )
    }
    return this.summary
  }

  async close(): Promise<void> {
    for (const log of this.logs.values()) await log.then((l) => l.close()).catch(() => undefined)
  }
}

/** Checks what the envelope schema cannot (size, target, headers), with the messages `wal produce` gives. */
export function checkMutation(config: ResolvedConfig, mutation: Mutation): void {
  Producer.check(config, mutation)
}

/** One per process: createdAt strictly increases over every mutation it produces (see created-at.ts). */
const createdAtClock = new CreatedAtClock()

/** The next createdAt of this process, for every path that writes mutations (the daemon's HTTP API too). */
export const nextCreatedAtMs = (): number => createdAtClock.next()

function decodeDefaults(options: ProduceOptions, nowMs: number, headers: Record<string, string> | undefined): DecodeDefaults {
  const delay = delayMs(options, nowMs)
  return {
    namespace: options.namespace ?? options.defaultNamespace ?? 'default',
    forceNamespace: options.namespace !== undefined,
    nowMs,
    createdAtMs: nextCreatedAtMs,
    headers,
    notBefore: delay === undefined ? undefined : () => delay.baseMs + Math.floor(Math.random() * (delay.jitterMs + 1)),
    target: options.target,
    fromUser: true,
  }
}

/** JSON's whitespace around a value (not String#trim's, which also takes characters JSON keeps). */
function trimJsonSpace(text: string): string {
  return text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '')
}

/** One mutation from flags. */
async function produceOne(producer: Producer, options: ProduceOptions): Promise<void> {
  const entry: Entry = { lineNumber: 1 }
  let payload: unknown
  let payloadText: string | undefined
  let payloadEncoding: 'json' | 'base64' = 'json'
  try {
    if (options.payload !== undefined) {
      try {
        payload = parsePayloadText(options.payload, '-p')
      } catch (error) {
        if (!(error instanceof InvalidRecordError) || error.code !== 'WAL_RECORD_MALFORMED') throw error
        throw new UsageError(error.message, {
          suggestions: [`quote a JSON value, e.g. -p '{"name":"Ada"}' or -p '"a string"'`, 'for bytes, use --payload-file'],
        })
      }
      payloadText = trimJsonSpace(options.payload)
    } else {
      let bytes: Buffer | null
      try {
        bytes = await readFileUpTo(options.payloadFile!, MAX_LINE_BYTES)
      } catch (error) {
        if (error instanceof InterruptedError) throw error
        throw new UsageError(`cannot read --payload-file ${options.payloadFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error })
      }
      // Past the most any namespace takes (a device such as /dev/zero never ends): refused unread.
      if (bytes === null) throw new InvalidRecordError(`--payload-file ${options.payloadFile} is larger than ${formatBytes(MAX_LINE_BYTES)}, the most a payload may be`, { code: 'WAL_PAYLOAD_TOO_LARGE' })
      // A file is bytes: JSON text is kept as it is, anything else (not UTF-8, not JSON) as base64 bytes.
      let text: string | undefined
      if (isUtf8(bytes)) {
        text = bytes.toString('utf8')
        try {
          payload = JSON.parse(text)
        } catch {
          text = undefined
        }
      }
      if (text === undefined) {
        payload = bytes.toString('base64')
        payloadEncoding = 'base64'
      } else {
        parsePayloadText(text, `--payload-file ${options.payloadFile}`)
        payloadText = trimJsonSpace(text)
      }
    }
    const nowMs = Date.now()
    const defaults = decodeDefaults(options, nowMs, parseHeaders(options.headers))
    const envelope = {
      payload,
      payloadEncoding,
      ...(options.key === undefined ? {} : { key: options.key }),
      ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
    }
    entry.mutation = decodeEnvelope(envelope, defaults, payloadText)
    producer.check(entry.mutation)
  } catch (error) {
    if (!(error instanceof InvalidRecordError)) throw error
    entry.error = error
    entry.mutation = undefined
  }
  await producer.commit([entry])
}

/** Input of at least this size shows a progress bar (on a terminal's stderr, with stdout redirected). */
const PROGRESS_MIN_BYTES = 1024 * 1024

/**
 * A progress bar for a large file on stdin (`wal produce < big.ndjson > acks`): only when the size is
 * known, stderr is a terminal and stdout is not (ack lines on the same terminal would tear the bar).
 */
async function inputProgress(options: ProduceOptions): Promise<Progress | null> {
  const fd = (options.io.stdin as { fd?: number }).fd
  if (fd === undefined || options.io.stdin.isTTY || (options.io.stdout as { isTTY?: boolean }).isTTY || !(options.io.stderr as { isTTY?: boolean }).isTTY) return null
  let size: number
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) return null
    size = stat.size
  } catch {
    return null
  }
  if (size < PROGRESS_MIN_BYTES) return null
  return terminalProgress(options.io, { label: 'produce', unit: 'bytes', total: size })
}

/** Many mutations: NDJSON envelopes on stdin, group-committed. */
async function produceStream(producer: Producer, options: ProduceOptions): Promise<number> {
  const progress = await inputProgress(options)
  try {
    return await produceLines(producer, options, progress?.emitter)
  } finally {
    await progress?.close()
  }
}

async function produceLines(producer: Producer, options: ProduceOptions, progress: ProgressEmitter | undefined): Promise<number> {
  if (options.idempotencyKey !== undefined || options.key !== undefined) {
    throw new UsageError('-k and --idempotency-key apply to one mutation given with -p or --payload-file', {
      suggestions: ['put "key" and "idempotencyKey" in each NDJSON line instead'],
    })
  }
  const headers = parseHeaders(options.headers)
  decodeDefaults(options, Date.now(), headers) // validates --delay/--at/--jitter before reading anything
  const perSecond = rateFlag(options.rate)
  const limiter = perSecond === null ? undefined : new RateLimiter(perSecond)
  // Rate-limited, a batch holds about 20 ms of lines: writes (and acks) come steadily, not in bursts.
  const maxBatchRecords = perSecond === null ? MAX_BATCH_RECORDS : Math.max(1, Math.min(MAX_BATCH_RECORDS, Math.floor(perSecond / 50)))
  const wrapId = options.txn ? newTxnId() : undefined
  const book = new TxnBook<Entry>(wrapId)
  if (options.io.stdin.isTTY) options.io.stderr.write('wal: reading NDJSON mutations from stdin (Ctrl-D to finish)…\n')
  let total = 0
  let batch: Entry[] = []
  let batchBytes = 0
  // Up to MAX_IN_FLIGHT batches commit while the next is parsed; a failure surfaces in order.
  const inFlight: Promise<void>[] = []
  const flush = async (): Promise<void> => {
    const entries = batch
    batch = []
    batchBytes = 0
    const committing = producer.commit(entries)
    committing.catch(() => undefined)
    inFlight.push(committing)
    while (inFlight.length >= (producer.appendBlocked ? 1 : MAX_IN_FLIGHT)) await inFlight.shift()
  }
  /**
   * A transaction's marker goes in only once its parts are durable: in the same batch where one append
   * is atomic (embedded) and every part is in it, else after every batch before it has committed; a
   * part that was not written keeps the marker out.
   */
  const placeMarker = async (marker: Entry, txn: OpenTxn<Entry>): Promise<void> => {
    if (batch.includes(txn.parts[0]!) && producer.atomicAppend(txn.namespace)) return
    if (batch.length > 0) await flush()
    for (const committing of inFlight.splice(0)) await committing
    const lost = txn.parts.find((p) => p.result === undefined)
    if (lost === undefined) return
    marker.error = book.refusal({ ...txn, spoiled: `its part on line ${lost.lineNumber} was not written` })
    marker.mutation = undefined
  }
  const chunks = readLineChunks(options.io.stdin)[Symbol.asyncIterator]()
  // The next chunk, or 'interrupted'. Not a race with one long-lived promise: each race would leave a
  // reaction on it that holds its chunk, and so every line read until the end of the input.
  const nextOrInterrupted = (next: Promise<IteratorResult<NumberedLine[]>>): Promise<IteratorResult<NumberedLine[]> | 'interrupted'> => {
    const signal = options.signal
    if (signal === undefined) return next
    if (signal.aborted) return Promise.resolve('interrupted')
    return new Promise((resolve, reject) => {
      const onAbort = (): void => resolve('interrupted')
      signal.addEventListener('abort', onAbort, { once: true })
      next.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }
  let next = chunks.next()
  for (;;) {
    const chunk = await nextOrInterrupted(next)
    if (chunk === 'interrupted') {
      options.io.stdin.destroy()
      break
    }
    if (chunk.done) break
    const defaults = decodeDefaults(options, Date.now(), headers)
    if (progress) progress.add(chunk.value.reduce((n, l) => n + Buffer.byteLength(l.line) + 1, 0))
    for (const { line, lineNumber, invalid } of chunk.value) {
      if (limiter) {
        // Stopped while waiting for the rate: the lines not yet taken are not written.
        const allowed = await limiter.take(options.signal).then(
          () => true,
          () => false,
        )
        if (!allowed) break
      }
      total++
      const entry: Entry = { lineNumber }
      let closes: OpenTxn<Entry> | undefined
      try {
        if (invalid !== undefined) throw new InvalidRecordError(invalid, { code: 'WAL_RECORD_MALFORMED' })
        const mutation = decodeEnvelopeLine(line, defaults)
        producer.check(mutation)
        closes = book.admit(mutation, entry)
        entry.mutation = mutation
        batchBytes += line.length
      } catch (error) {
        if (!(error instanceof WalError) || error instanceof BackendUnavailableError) throw error
        entry.error = error
        book.rejected(line, lineNumber)
      }
      if (closes !== undefined) await placeMarker(entry, closes)
      batch.push(entry)
      // Where a batch is not one atomic append (Kafka: a transaction's parts and marker go through a
      // transactional producer, the other lines beside it), the lines after a marker wait for it, so the
      // log has them after it, as the input does.
      if (closes !== undefined && !producer.atomicAppend(closes.namespace)) await flush()
      else if (batch.length >= maxBatchRecords || batchBytes >= MAX_BATCH_BYTES) await flush()
    }
    next = chunks.next()
    if (batch.length > 0) {
      // Linger briefly: a fast writer fills the batch, an interactive one is not kept waiting.
      const more = await Promise.race([next.then(() => true), sleep(LINGER_MS).then(() => false)])
      if (!more) await flush()
    }
  }
  const wrapped = wrapId === undefined || options.signal?.aborted ? undefined : book.take(wrapId)
  if (wrapped?.spoiled !== undefined) options.io.stderr.write(escapeControl(`wal: ${book.refusal(wrapped).message}\n`))
  else if (wrapped !== undefined && wrapped.parts.length > 0) {
    // --txn: the input is over, so is the transaction: its marker closes it.
    const marker: Entry = { lineNumber: 0 }
    marker.mutation = decodeEnvelope({ txn: wrapId, commit: true }, decodeDefaults(options, Date.now(), headers))
    book.admitMarker(marker.mutation, wrapped)
    await placeMarker(marker, wrapped)
    batch.push(marker)
  }
  if (batch.length > 0) await flush()
  for (const committing of inFlight) await committing
  for (const txn of book.unclosed()) {
    if (txn.parts.length === 0) continue
    options.io.stderr.write(escapeControl(`wal: transaction ${JSON.stringify(txn.id)} has no marker in this input ({"txn": ID, "commit": true}): its ${plural(txn.parts.length, 'part is', 'parts are')} never applied, and it is aborted after the namespace's txnTimeoutMs\n`))
  }
  if (options.signal?.aborted) {
    const { durable, duplicates } = producer.summary
    throw new InterruptedError(`interrupted: stopped reading stdin after line ${total}; the ${durable + duplicates} mutations acked are durable${wrapId === undefined ? '' : ` (transaction ${wrapId} has no marker: it is never applied)`}`, {
      suggestions: ['produce the rest of the input from the line after that'],
    })
  }
  return total
}

export async function produce(given: ProduceOptions): Promise<ProduceSummary> {
  let options = given
  if (options.payload !== undefined && options.payloadFile !== undefined) {
    throw new UsageError('give the payload with -p or with --payload-file, not both')
  }
  rateFlag(options.rate) // a bad --rate is refused before anything is written
  if (options.txn && (options.payload !== undefined || options.payloadFile !== undefined)) {
    throw new UsageError('--txn makes one transaction of the NDJSON lines on stdin, not of -p or --payload-file', { suggestions: ['pipe the parts as lines: … | wal produce --txn'] })
  }
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  if (options.namespace !== undefined) namespaceSettings(config, options.namespace)
  options = { ...options, defaultNamespace: config.defaultNamespace }
  const producer = new Producer(config, options)
  try {
    if (options.payload !== undefined || options.payloadFile !== undefined) {
      await produceOne(producer, options)
      return producer.finish(1)
    }
    const total = await produceStream(producer, options)
    return producer.finish(total)
  } finally {
    await producer.close()
  }
}
