/**
 * The embedded log: one SQLite database per namespace, through Node's built-in `node:sqlite`. WAL
 * journal with synchronous=FULL, so a commit is on disk before `append` resolves. Concurrent `append`
 * calls in one process share a transaction (group commit); processes take turns on SQLite's write lock.
 */
import { constants, accessSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { setTimeout as sleep } from 'node:timers/promises'

import { decodeFailures, MAX_IDEMPOTENCY_KEY_CHARS, MAX_KEY_CHARS, MAX_NAME_CHARS, NO_HEADERS, type LogRecord, type Mutation } from '../../envelope/envelope.js'
import { ULID_PATTERN } from '../../envelope/id.js'
import { checkedJson, poisonRecord, storedHeaders } from '../../envelope/quarantine.js'
import { timeInRange } from '../../time.js'
import { BackendUnavailableError, ConfigError, InvalidRecordError, NotFoundError, type WalError } from '../../errors.js'
import type { AppendOptions, AppendResult, ConsumerStore, ConsumerStoreOptions, DeadLetterQueue, LogBackend, LogInfo, PartitionMark, Positions, ReadOptions, SkipList, TxnInfo } from '../backend.js'
import { ADD_CREATED_AT_US, DDL, PRAGMAS, SCHEMA_VERSION, TXN_DDL } from './schema.js'
import { LogWriter, toRow, type Row, type WriteResult } from './writer.js'
import { writerThreadWanted, WriterThread, writerThreadAvailable } from './writer-client.js'
import { EmbeddedConsumerStore } from './consumer-store.js'
import { EmbeddedDeadLetterQueue } from './dead-letter-queue.js'
import { EmbeddedSkipList } from './skip-list.js'
import { LOCK_TIMEOUT_MS, unavailable } from './errors.js'
import { holdYoungGeneration } from '../../young-generation.js'

/** How long a writer waits for another process's transaction before giving up. */
export { LOCK_TIMEOUT_MS }

/** How often a following reader checks for new commits. */
export const FOLLOW_POLL_MS = 50
const READ_BATCH = 500

export interface EmbeddedLogOptions {
  stateDir: string
  namespace: string
  partitions: number
  /** Create the log if it does not exist yet (produce); otherwise a missing log is NotFoundError. */
  create: boolean
  /** The namespace's txnTimeoutMs: parts and markers of an older open transaction are refused. */
  txnTimeoutMs?: number
  /** Commit large batches on a writer thread when a core is idle (default: when the built thread module is there). */
  writerThread?: boolean
}

/** Batches at least this large go to the writer thread; smaller ones are committed in process. */
export const WRITER_THREAD_MIN_ROWS = 256

/** The file that holds a namespace's embedded log. */
export function embeddedLogPath(stateDir: string, namespace: string): string {
  return join(stateDir, 'embedded', `${namespace}.db`)
}

/** Names of the namespaces that have an embedded log in the state directory. */
export function listEmbeddedLogs(stateDir: string): string[] {
  const dir = join(stateDir, 'embedded')
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((file) => file.endsWith('.db'))
    .map((file) => file.slice(0, -3))
    .sort()
}

interface Pending {
  mutations: readonly Mutation[]
  perEntryErrors: boolean
  resolve: (results: AppendResult[]) => void
  reject: (error: unknown) => void
}

/** A row of the records table as SQLite returns it. */
type StoredRow = {
  seq: number
  partition: number
  offset: number
  id: string
  key: string
  appended_at: number
  created_at: number
  not_before: number | null
  target: string | null
  idempotency_key: string | null
  attempts: number
  headers: string | null
  payload: string | Uint8Array
  failures: string | null
  created_at_us: number | null
}

/** A row's columns in StoredRow's order (that of the table), read as an array. */
const STORED_COLUMNS = 'seq, partition, offset, id, key, appended_at, created_at, not_before, target, idempotency_key, attempts, headers, payload, failures, created_at_us'
type StoredValues = [number, number, number, string, string, number, number, number | null, string | null, string | null, number, string | null, string | Uint8Array, string | null, number | null]

/** An empty array with the elements kind of a page of rows (one that has held an object). */
function noRows(): StoredRow[] {
  const rows: unknown[] = [null]
  rows.pop()
  return rows as StoredRow[]
}

function storedRow(v: StoredValues): StoredRow {
  return {
    seq: v[0],
    partition: v[1],
    offset: v[2],
    id: v[3],
    key: v[4],
    appended_at: v[5],
    created_at: v[6],
    not_before: v[7],
    target: v[8],
    idempotency_key: v[9],
    attempts: v[10],
    headers: v[11],
    payload: v[12],
    failures: v[13],
    created_at_us: v[14],
  }
}

export class EmbeddedLog implements LogBackend {
  readonly namespace: string
  readonly partitions: number
  readonly path: string
  private readonly db: DatabaseSync
  private readonly selectOffsets: StatementSync
  private readonly writer: LogWriter
  private readonly useWriterThread: boolean
  private thread: WriterThread | undefined
  private readonly statements = new Map<string, StatementSync>()
  /** Where the last readPage ended: the last row it scanned, and each partition's next offset after it. */
  private pageEnd: { cursor: number; position: ReadonlyMap<number, number> } | undefined
  private pending: Pending[] = []
  private flushScheduled = false
  /** Transactions committed by this handle; lets tests show group commit. */
  get commits(): number {
    return this.writer.commits + (this.thread?.commits ?? 0)
  }

  private constructor(db: DatabaseSync, path: string, namespace: string, partitions: number, useWriterThread: boolean, private readonly txnTimeoutMs?: number) {
    this.db = db
    this.path = path
    this.namespace = namespace
    this.partitions = partitions
    this.selectOffsets = db.prepare('SELECT partition, next_offset FROM partitions ORDER BY partition')
    this.writer = new LogWriter(db)
    this.useWriterThread = useWriterThread
  }

  /** Opens (and with `create`, creates) the log of a namespace. */
  static open(options: EmbeddedLogOptions): EmbeddedLog {
    const path = embeddedLogPath(options.stateDir, options.namespace)
    const exists = existsSync(path)
    if (!exists && !options.create) {
      throw new NotFoundError(`namespace "${options.namespace}" has no log yet (no mutation was produced to it)`, {
        code: 'WAL_NAMESPACE_NOT_FOUND',
        details: { namespace: options.namespace, path },
        suggestions: [`produce to it first: wal produce -n ${options.namespace} …`, 'list namespaces: wal ns ls'],
      })
    }
    let db: DatabaseSync
    try {
      mkdirSync(join(options.stateDir, 'embedded'), { recursive: true, mode: 0o700 })
      if (!exists) accessSync(join(options.stateDir, 'embedded'), constants.W_OK)
      db = new DatabaseSync(path, { timeout: LOCK_TIMEOUT_MS })
      for (const pragma of PRAGMAS) db.exec(pragma)
    } catch (error) {
      throw unavailable(path, 'open', error)
    }
    try {
      const partitions = EmbeddedLog.initialize(db, options)
      return new EmbeddedLog(db, path, options.namespace, partitions, options.writerThread ?? writerThreadAvailable(), options.txnTimeoutMs)
    } catch (error) {
      db.close()
      if (error instanceof ConfigError) throw error
      throw unavailable(path, 'open', error)
    }
  }

  /** Brings a log written by an older wal up to the current schema (additive changes only). */
  private static migrate(db: DatabaseSync): void {
    const hasColumn = (name: string): boolean => db.prepare('SELECT 1 AS ok FROM pragma_table_info(?) WHERE name = ?').get('records', name) !== undefined
    const hasTxns = (): boolean => db.prepare("SELECT 1 AS ok FROM sqlite_master WHERE type = 'table' AND name = 'txn_parts'").get() !== undefined
    if (hasColumn('created_at_us') && hasTxns()) return
    db.exec('BEGIN IMMEDIATE')
    try {
      // Another process may have added it meanwhile: look again under the write lock.
      if (!hasColumn('created_at_us')) db.exec(ADD_CREATED_AT_US)
      if (!hasTxns()) db.exec(TXN_DDL)
      db.exec('COMMIT')
    } catch (error) {
      db.exec('ROLLBACK')
      throw error
    }
  }

  /** Creates the schema on first use; checks the partition count of an existing log. */
  private static initialize(db: DatabaseSync, options: EmbeddedLogOptions): number {
    const hasMeta = db.prepare("SELECT 1 AS ok FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get()
    if (!hasMeta) {
      db.exec('BEGIN IMMEDIATE')
      try {
        db.exec(DDL)
        const stored = db.prepare("SELECT value FROM meta WHERE name = 'partitions'").get()
        if (!stored) {
          const setMeta = db.prepare('INSERT INTO meta (name, value) VALUES (?, ?)')
          setMeta.run('schema_version', String(SCHEMA_VERSION))
          setMeta.run('namespace', options.namespace)
          setMeta.run('partitions', String(options.partitions))
          setMeta.run('created_at', new Date().toISOString())
          const addPartition = db.prepare('INSERT INTO partitions (partition, next_offset) VALUES (?, 0)')
          for (let p = 0; p < options.partitions; p++) addPartition.run(p)
        }
        db.exec('COMMIT')
      } catch (error) {
        db.exec('ROLLBACK')
        throw error
      }
    }
    EmbeddedLog.migrate(db)
    const row = db.prepare("SELECT value FROM meta WHERE name = 'partitions'").get() as { value: string }
    const partitions = Number(row.value)
    if (partitions !== options.partitions && options.create) {
      throw new ConfigError(
        `namespace "${options.namespace}": its embedded log has ${partitions} partitions, but the config asks for ${options.partitions}`,
        {
          details: { namespace: options.namespace, stored: partitions, configured: options.partitions },
          code: 'WAL_NAMESPACE_REMAP',
          suggestions: [
            `set partitions: ${partitions} for this namespace: keys would move to other partitions and lose their order across the change`,
            `or, to raise it, drain the namespace first and run: wal ns init ${options.namespace} --allow-remap`,
          ],
        },
      )
    }
    return partitions
  }

  /**
   * Raises the partition count of this log to `partitions` (`wal ns init --allow-remap`): the new
   * partitions start empty, and keys hash over the new count from the next write on. Lowering is
   * refused: the records of the dropped partitions would be left where no consumer reads.
   */
  repartition(partitions: number): void {
    if (partitions < this.partitions) {
      throw new ConfigError(`namespace "${this.namespace}": its embedded log has ${this.partitions} partitions; it cannot be lowered to ${partitions}, since the records in partition${this.partitions - partitions === 1 ? ` ${partitions}` : `s ${partitions} to ${this.partitions - 1}`} would no longer be read`, {
        code: 'WAL_NAMESPACE_REMAP',
        details: { namespace: this.namespace, stored: this.partitions, configured: partitions },
        suggestions: [`set partitions: ${this.partitions} again, or write to a new namespace with ${partitions} partitions once this one is drained`],
      })
    }
    this.db.exec('BEGIN IMMEDIATE')
    try {
      const stored = Number((this.db.prepare("SELECT value FROM meta WHERE name = 'partitions'").get() as { value: string }).value)
      const addPartition = this.db.prepare('INSERT OR IGNORE INTO partitions (partition, next_offset) VALUES (?, 0)')
      for (let p = stored; p < partitions; p++) addPartition.run(p)
      this.db.prepare("UPDATE meta SET value = ? WHERE name = 'partitions'").run(String(partitions))
      this.db.exec('COMMIT')
    } catch (error) {
      this.db.exec('ROLLBACK')
      throw unavailable(this.path, 'repartition', error)
    }
  }

  append(mutations: readonly Mutation[], options: AppendOptions = {}): Promise<AppendResult[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ mutations, perEntryErrors: options.perEntryErrors ?? false, resolve, reject })
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  /**
   * Whether a commit of this many rows runs in process rather than on the writer thread. Large batches
   * go to the thread when it is asked for (WAL_WRITER_THREAD=on), so the caller can prepare the next
   * batch meanwhile; once the thread is in use every commit goes through it, which keeps commits in order.
   */
  appendBlocks(rows: number): boolean {
    return this.thread === undefined && !(this.useWriterThread && rows >= WRITER_THREAD_MIN_ROWS && writerThreadWanted())
  }

  /** Commits every pending append in one transaction: one fsync for all of them. */
  private flush(): void {
    const batch = this.pending
    this.pending = []
    this.flushScheduled = false
    const rows: Row[] = []
    for (const p of batch) for (const m of p.mutations) rows.push(toRow(m, this.partitions, this.txnTimeoutMs))
    const settle = (written: WriteResult[]): void => {
      let at = 0
      for (const p of batch) {
        const results: AppendResult[] = written.slice(at, at + p.mutations.length)
        at += p.mutations.length
        let refused: WalError | undefined
        for (let i = 0; i < results.length; i++) {
          const why = (results[i] as WriteResult).refused
          if (why === undefined) continue
          const { id, partition, offset, duplicate } = results[i]!
          results[i] = {
            id,
            partition,
            offset,
            duplicate,
            error: (results[i] as WriteResult).txnRefused
              ? new InvalidRecordError(why, { code: 'WAL_TXN_REFUSED' })
              : new InvalidRecordError(`the embedded log refused it: ${why}`, {
                  code: 'WAL_RECORD_REFUSED',
                  suggestions: ['check its times, counts and sizes against the limits in the README (the mutation envelope)'],
                }),
          }
          refused ??= results[i]!.error
        }
        if (refused && !p.perEntryErrors) p.reject(refused)
        else p.resolve(results)
      }
    }
    const fail = (error: unknown): void => {
      const converted = error instanceof BackendUnavailableError ? error : unavailable(this.path, 'write to', error)
      for (const p of batch) p.reject(converted)
    }
    if (!this.appendBlocks(rows.length)) {
      this.thread ??= new WriterThread(this.path, LOCK_TIMEOUT_MS)
      this.thread.commit(rows).then(settle, fail)
      return
    }
    try {
      settle(this.writer.commit(rows))
    } catch (error) {
      fail(error)
    }
  }

  /** A prepared statement, prepared once per handle: readers call read() and marks() in a loop. */
  private statement(sql: string): StatementSync {
    let prepared = this.statements.get(sql)
    if (!prepared) {
      prepared = this.db.prepare(sql)
      this.statements.set(sql, prepared)
    }
    return prepared
  }

  async marks(): Promise<PartitionMark[]> {
    const low = this.statement('SELECT offset FROM records WHERE partition = ? ORDER BY offset LIMIT 1')
    return (this.selectOffsets.all() as Array<{ partition: number; next_offset: number }>).map((r) => ({
      partition: r.partition,
      low: (low.get(r.partition) as { offset: number } | undefined)?.offset ?? r.next_offset,
      high: r.next_offset,
    }))
  }

  /**
   * Per partition, the offset of its first record appended at or after `timeMs` (its high mark when
   * none is). A binary search over the partition's offsets, each step one lookup in the (partition,
   * offset) index: appended_at never decreases along a partition (the writer stamps each commit with
   * at least the last one's time), so the time takes O(partitions x log records), whatever the log's size.
   */
  async offsetsForTime(timeMs: number): Promise<Map<number, number>> {
    const at = this.statement('SELECT offset, appended_at FROM records WHERE partition = ? AND offset >= ? ORDER BY offset LIMIT 1')
    const result = new Map<number, number>()
    for (const mark of await this.marks()) {
      let low = mark.low
      let high = mark.high
      while (low < high) {
        const middle = low + Math.floor((high - low) / 2)
        const row = at.get(mark.partition, middle) as { offset: number; appended_at: number } | undefined
        if (row === undefined || row.appended_at >= timeMs) high = middle
        else low = row.offset + 1
      }
      const first = low < mark.high ? (at.get(mark.partition, low) as { offset: number } | undefined) : undefined
      result.set(mark.partition, first?.offset ?? mark.high)
    }
    return result
  }

  async *read(options: ReadOptions): AsyncIterable<LogRecord> {
    const position = new Map(options.from)
    const until = options.until
    const done = (p: number): boolean => until !== undefined && (position.get(p) ?? Infinity) >= (until.get(p) ?? Infinity)
    // Asked after every record: without an array per call, and at once when there is no end.
    const allDone = (): boolean => {
      if (until === undefined) return false
      for (const p of position.keys()) if (!done(p)) return false
      return true
    }
    if (allDone() && !options.follow) return

    let cursor = this.startSeq(position)
    if (!options.follow && until !== undefined && this.sparse(position, until, cursor)) {
      yield* this.mergePartitions(position, until, options.signal)
      return
    }
    const dataVersion = this.statement('PRAGMA data_version')
    let version = dataVersion.get() as { data_version: number }

    while (!options.signal?.aborted) {
      const rows = this.scanAfter(cursor)
      for (const row of rows) {
        cursor = row.seq
        const from = position.get(row.partition)
        if (from === undefined || row.offset < from || done(row.partition)) continue
        position.set(row.partition, row.offset + 1)
        yield this.toRecord(row)
        if (!options.follow && allDone()) return
      }
      if (rows.length === READ_BATCH) continue
      if (!options.follow) return
      if (until !== undefined && allDone()) return
      // Caught up: wait for another connection to commit.
      while (!options.signal?.aborted) {
        const now = dataVersion.get() as { data_version: number }
        if (now.data_version !== version.data_version) {
          version = now
          break
        }
        await sleep(FOLLOW_POLL_MS, undefined, { signal: options.signal }).catch(() => undefined)
      }
    }
  }

  async readPage(from: Positions, max: number): Promise<LogRecord[]> {
    const position = new Map(from)
    const records: LogRecord[] = []
    // Going on from where the last page ended (a consumer reading page after page), the scan resumes
    // after that page's last row: no index look-up per partition to find where to start.
    let cursor = this.pageEnd !== undefined && samePositions(this.pageEnd.position, position) ? this.pageEnd.cursor : this.startSeq(position)
    while (records.length < max) {
      const rows = this.scanAfter(cursor)
      cursor = this.takeRows(rows, position, records, max, cursor)
      if (rows.length < READ_BATCH) break
    }
    // Every row up to the cursor is behind these positions: rows are appended with a growing seq, a
    // partition's offsets grow with it, and none is ever deleted.
    this.pageEnd = { cursor, position }
    return records
  }

  /**
   * Adds to `records` the rows at or past each partition's position, up to `max` records; returns the
   * seq of the last row looked at. A loop of its own, not nested in readPage's: V8 compiles a long
   * first page's loop while it runs, and code entered that way in an inner loop is thrown away each
   * time that loop ends, to be compiled again.
   */
  private takeRows(rows: readonly StoredRow[], position: Map<number, number>, records: LogRecord[], max: number, cursor: number): number {
    for (let i = 0; i < rows.length && records.length < max; i++) {
      const row = rows[i]!
      cursor = row.seq
      const start = position.get(row.partition)
      if (start === undefined || row.offset < start) continue
      position.set(row.partition, row.offset + 1)
      records.push(this.toRecord(row))
    }
    return cursor
  }

  /**
   * Whether a bounded read wants few of the rows a scan in append order would pass: one partition that
   * has been quiet while the others were written (`tail --from -10`'s last ten of it sit far back), or
   * a partition read on its own. Such a read goes by each partition's (partition, offset) index instead.
   */
  private sparse(position: ReadonlyMap<number, number>, until: Positions, cursor: number): boolean {
    let wanted = 0
    for (const [p, offset] of position) {
      const end = until.get(p)
      if (end === undefined) return false
      wanted += Math.max(0, end - offset)
    }
    const last = (this.statement('SELECT coalesce(max(seq), 0) AS seq FROM records').get() as { seq: number }).seq
    return wanted * 4 < last - cursor
  }

  /** The records of a bounded read, each partition through its own index, merged back into append order. */
  private async *mergePartitions(position: ReadonlyMap<number, number>, until: Positions, signal?: AbortSignal): AsyncGenerator<LogRecord> {
    const sql = `SELECT ${STORED_COLUMNS} FROM records WHERE partition = ? AND offset >= ? AND offset < ? ORDER BY offset LIMIT ${READ_BATCH}`
    const cursors: Array<{ partition: number; next: number; end: number; rows: StoredRow[]; at: number }> = []
    const refill = (c: (typeof cursors)[number]): void => {
      c.rows = c.next < c.end ? this.rows(sql, c.partition, c.next, c.end) : []
      c.at = 0
    }
    for (const [partition, next] of position) {
      const cursor = { partition, next, end: until.get(partition)!, rows: [] as StoredRow[], at: 0 }
      refill(cursor)
      if (cursor.rows.length > 0) cursors.push(cursor)
    }
    while (cursors.length > 0 && !signal?.aborted) {
      let earliest = 0
      for (let i = 1; i < cursors.length; i++) if (cursors[i]!.rows[cursors[i]!.at]!.seq < cursors[earliest]!.rows[cursors[earliest]!.at]!.seq) earliest = i
      const c = cursors[earliest]!
      const row = c.rows[c.at++]!
      c.next = row.offset + 1
      yield this.toRecord(row)
      if (c.at === c.rows.length) {
        if (c.rows.length === READ_BATCH) refill(c)
        if (c.at === c.rows.length) cursors.splice(earliest, 1)
      }
    }
  }

  /** The seq to scan after: just before the earliest record any partition still needs. */
  private startSeq(position: ReadonlyMap<number, number>): number {
    // The last seq first: each statement reads its own snapshot, and a record appended after this one
    // has a higher seq, so the scan reaches it. (Taken last, it could pass a record appended to a
    // partition after that partition was looked up and found caught up: the reader would skip it.)
    let cursor = (this.statement('SELECT coalesce(max(seq), 0) AS seq FROM records').get() as { seq: number }).seq
    const seqAt = this.statement('SELECT seq FROM records WHERE partition = ? AND offset >= ? ORDER BY offset LIMIT 1')
    for (const [p, offset] of position) {
      const row = seqAt.get(p, offset) as { seq: number } | undefined
      if (row) cursor = Math.min(cursor, row.seq - 1)
    }
    return cursor
  }

  /**
   * The next READ_BATCH rows after a seq, in append order. Read as arrays and made into objects of one
   * shape here: node:sqlite's row objects are dictionaries, slower to build and to read from (a tenth
   * of a consumer's time).
   */
  private scanAfter(cursor: number): StoredRow[] {
    return this.rows(`SELECT ${STORED_COLUMNS} FROM records WHERE seq > ? ORDER BY seq LIMIT ${READ_BATCH}`, cursor)
  }

  /** A page of records: `sql` selects STORED_COLUMNS, read as arrays and made into objects of one shape. */
  private rows(sql: string, ...parameters: number[]): StoredRow[] {
    holdYoungGeneration()
    try {
      let page = this.statements.get(sql)
      if (!page) {
        page = this.db.prepare(sql)
        page.setReturnArrays(true)
        this.statements.set(sql, page)
      }
      const values = page.all(...parameters) as unknown as StoredValues[]
      // An empty page as an array of the same kind as a full one (`[].map()` makes another kind, and
      // the optimized code of every loop over pages would be thrown away at the log's end).
      return values.length === 0 ? noRows() : values.map(storedRow)
    } catch (error) {
      // An integer beyond what JavaScript holds exactly (written by another tool, or damaged): read
      // the page again with big integers, so that row is quarantined rather than the reader stopped.
      if ((error as { code?: string }).code !== 'ERR_OUT_OF_RANGE') throw error
      return this.readWide(sql, ...parameters)
    }
  }

  /** A page read with big integers: values past Number.MAX_SAFE_INTEGER are kept as bigint, for toRecord to refuse. */
  private readWide(sql: string, ...parameters: Array<number | string>): StoredRow[] {
    const wide = this.db.prepare(sql)
    wide.setReadBigInts(true)
    return (wide.all(...parameters) as Array<Record<string, unknown>>).map((row) => {
      const out: Record<string, unknown> = {}
      for (const [name, value] of Object.entries(row)) out[name] = typeof value === 'bigint' && value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value
      return out as StoredRow
    })
  }

  /** A stored row as a record; one that cannot be decoded comes back as poison (see LogRecord.poison). */
  private toRecord(row: StoredRow): LogRecord {
    try {
      return this.decodeRow(row)
    } catch (error) {
      return this.poisonRecord(row, (error as Error).message)
    }
  }

  private decodeRow(row: StoredRow): LogRecord {
    const createdAtMs = row.created_at_us === null ? row.created_at : row.created_at_us / 1000
    if (!timeInRange(createdAtMs) || (row.created_at_us !== null && !Number.isSafeInteger(row.created_at_us))) throw new Error(`created_at ${String(row.created_at_us ?? row.created_at)} is not a time wal stores`)
    if (row.not_before !== null && !(Number.isSafeInteger(row.not_before) && timeInRange(row.not_before))) throw new Error(`not_before ${String(row.not_before)} is not a time wal stores`)
    if (!Number.isSafeInteger(row.attempts) || row.attempts < 0) throw new Error(`attempts ${String(row.attempts)} is not a count`)
    if (typeof row.id !== 'string' || !ULID_PATTERN.test(row.id)) throw new Error(`the id ${JSON.stringify(String(row.id).slice(0, 40))} is not a ULID`)
    if (typeof row.key !== 'string' || row.key.length === 0 || row.key.length > MAX_KEY_CHARS) throw new Error(`the key is not a string of 1 to ${MAX_KEY_CHARS} characters`)
    if (row.target !== null && (typeof row.target !== 'string' || row.target.length === 0 || row.target.length > MAX_NAME_CHARS)) throw new Error('the target is not a target name')
    if (row.idempotency_key !== null && (typeof row.idempotency_key !== 'string' || row.idempotency_key.length > MAX_IDEMPOTENCY_KEY_CHARS)) throw new Error('the idempotency key is not a string of at most 512 characters')
    return {
      id: row.id,
      namespace: this.namespace,
      key: row.key,
      payload: typeof row.payload === 'string' ? { encoding: 'json', json: checkedJson(row.payload) } : { encoding: 'base64', bytes: row.payload },
      headers: row.headers === null ? NO_HEADERS : storedHeaders(row.headers),
      createdAtMs,
      notBeforeMs: row.not_before,
      target: row.target,
      idempotencyKey: row.idempotency_key,
      attempts: row.attempts,
      failures: decodeFailures(row.failures),
      partition: row.partition,
      offset: row.offset,
      appendedAtMs: row.appended_at,
    }
  }

  private poisonRecord(row: StoredRow, error: string): LogRecord {
    const raw = JSON.stringify(row, (_name, value: unknown) =>
      typeof value === 'bigint' ? value.toString() : value instanceof Uint8Array ? { base64: Buffer.from(value).toString('base64') } : value,
    )
    const appendedAtMs = typeof row.appended_at === 'number' && timeInRange(row.appended_at) ? row.appended_at : 0
    return poisonRecord({
      id: typeof row.id === 'string' ? row.id : undefined,
      key: typeof row.key === 'string' ? row.key : undefined,
      namespace: this.namespace,
      partition: Number(row.partition),
      offset: Number(row.offset),
      appendedAtMs,
      raw: Buffer.from(raw),
      error: `cannot decode the record at ${String(row.partition)}:${String(row.offset)} of the embedded log: ${error}`,
    })
  }

  async consumerStore(target: string, options: ConsumerStoreOptions = {}): Promise<ConsumerStore> {
    try {
      return EmbeddedConsumerStore.open(this.path, this.namespace, this.partitions, target, options.lockWaitMs ?? LOCK_TIMEOUT_MS)
    } catch (error) {
      throw unavailable(this.path, 'open the consumer state of', error)
    }
  }

  async deadLetterQueue(): Promise<DeadLetterQueue> {
    try {
      return EmbeddedDeadLetterQueue.open(this.path, this.namespace, LOCK_TIMEOUT_MS)
    } catch (error) {
      throw unavailable(this.path, 'open the DLQ of', error)
    }
  }

  async skipList(): Promise<SkipList> {
    try {
      return EmbeddedSkipList.open(this.path, LOCK_TIMEOUT_MS)
    } catch (error) {
      throw unavailable(this.path, 'open the skip list of', error)
    }
  }

  async find(id: string): Promise<LogRecord[]> {
    // No index on id: explain is rare, and an index would cost every produce.
    const sql = 'SELECT * FROM records WHERE id = ? ORDER BY seq'
    let rows: StoredRow[]
    try {
      rows = this.statement(sql).all(id) as StoredRow[]
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_OUT_OF_RANGE') throw error
      rows = this.readWide(sql, id)
    }
    return rows.map((row) => this.toRecord(row))
  }

  async transaction(id: string): Promise<TxnInfo | undefined> {
    const state = this.statement('SELECT * FROM txns WHERE txn = ?').get(id) as
      | { opened_at: number; parts: number; committed_at: number | null; marker_partition: number | null; marker_offset: number | null; aborted_at: number | null }
      | undefined
    if (state === undefined) return undefined
    const sql = 'SELECT r.*, p.seq AS txn_seq FROM txn_parts p JOIN records r ON r.partition = p.partition AND r.offset = p.offset WHERE p.txn = ? ORDER BY p.seq'
    const rows = this.statement(sql).all(id) as Array<StoredRow & { txn_seq: number }>
    const marker =
      state.marker_partition === null
        ? undefined
        : (this.statement('SELECT * FROM records WHERE partition = ? AND offset = ?').get(state.marker_partition, state.marker_offset) as StoredRow | undefined)
    return {
      id,
      state: state.committed_at !== null ? 'committed' : state.aborted_at !== null ? 'aborted' : 'open',
      openedAtMs: state.opened_at,
      committedAtMs: state.committed_at,
      abortedAtMs: state.aborted_at,
      partCount: state.parts,
      parts: rows.map((row) => ({ seq: row.txn_seq, record: this.toRecord(row) })),
      marker: marker === undefined ? null : this.toRecord(marker),
    }
  }

  async info(): Promise<LogInfo> {
    // A partition's offsets run without gaps from its first record to its high mark (the writer gives out
    // the next offset only to a row it inserted), so this counts records in index lookups, not a scan.
    let records = 0
    for (const mark of await this.marks()) records += mark.high - mark.low
    return { location: this.path, records, sizeBytes: this.sizeBytes() }
  }

  private sizeBytes(): number {
    let total = 0
    for (const suffix of ['', '-wal']) {
      try {
        total += statSync(this.path + suffix).size
      } catch {
        // The -wal file exists only while the database is open somewhere.
      }
    }
    return total
  }

  async close(): Promise<void> {
    if (this.pending.length > 0) this.flush()
    await this.thread?.close()
    if (this.db.isOpen) this.db.close()
  }
}

/** Whether two sets of positions name the same partitions at the same offsets. */
function samePositions(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  if (a.size !== b.size) return false
  for (const [p, offset] of a) if (b.get(p) !== offset) return false
  return true
}
