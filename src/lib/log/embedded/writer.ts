/**
 * The embedded log's write transaction, shared by the in-process path and the writer thread: it takes
 * rows whose partition is already known, assigns offsets under SQLite's write lock, and commits.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'

import { createdAtMicros } from '../../envelope/created-at.js'
import { failuresToJson, type Mutation } from '../../envelope/envelope.js'
import type { AppendResult } from '../backend.js'
import { partitionForKey } from '../partitioner.js'
import { txnOf } from '../../txn/txn.js'
import { INSERT_RECORD } from './schema.js'

/**
 * A transaction's record: its id, its part number (-1 on the marker; -2 on a part the log numbers: the
 * next one), the marker's part count (-1 on a part, or when the marker does not say), the namespace's txnTimeoutMs.
 */
export type TxnRow = [id: string, seq: number, parts: number, timeoutMs: number]

/** One mutation ready to insert: everything but its offset and append time. */
export type Row = [
  partition: number,
  id: string,
  key: string,
  createdAt: number,
  notBefore: number | null,
  target: string | null,
  idempotencyKey: string | null,
  attempts: number,
  headers: string | null,
  payload: string | Uint8Array,
  failures: string | null,
  txn: TxnRow | null,
]

export function toRow(m: Mutation, partitions: number, txnTimeoutMs = Number.MAX_SAFE_INTEGER): Row {
  let headers: string | null = null
  for (const _name in m.headers) {
    headers = JSON.stringify(m.headers)
    break
  }
  return [
    partitionForKey(m.key, partitions),
    m.id,
    m.key,
    m.createdAtMs,
    m.notBeforeMs,
    m.target,
    m.idempotencyKey,
    m.attempts,
    headers,
    m.payload.encoding === 'json' ? m.payload.json : m.payload.bytes,
    failuresToJson(m.failures),
    txnRow(m, txnTimeoutMs),
  ]
}

function txnRow(m: Mutation, timeoutMs: number): TxnRow | null {
  const role = txnOf(m)
  if (role === undefined) return null
  return role.marker ? [role.id, -1, role.parts ?? -1, timeoutMs] : [role.id, role.seq >= 0 ? role.seq : -2, -1, timeoutMs]
}

interface TxnState {
  opened_at: number
  parts: number
  committed_at: number | null
  aborted_at: number | null
}

/** A row's outcome: where it landed, or why SQLite refused that row (the rest of the batch is kept). */
export type WriteResult = AppendResult & { refused?: string; txnRefused?: boolean }

/**
 * Rows as they cross to the writer thread. Structured-cloning an array per row (a dozen values each,
 * and an object per result on the way back) cost `wal produce` about a sixth of its CPU time; the
 * common row — a JSON payload with nothing but its id, key, partition and createdAt — travels instead
 * as its texts in one string and its numbers in typed arrays. Any other row travels whole.
 */
export interface PackedRows {
  count: number
  /** The common rows' ids, keys and payloads, one after the other. */
  text: string
  /** Per common row, the lengths in `text` of its id, key and payload. */
  lengths: Int32Array<ArrayBuffer>
  /** Per common row, its partition and createdAt. */
  numbers: Float64Array<ArrayBuffer>
  /** The other rows, whole, and where each one goes among all of them (ascending). */
  others: Row[]
  otherAt: number[]
}

function commonRow(row: Row): boolean {
  return row[4] === null && row[5] === null && row[6] === null && row[7] === 0 && row[8] === null && typeof row[9] === 'string' && row[10] === null && row[11] === null
}

export function packRows(rows: readonly Row[]): PackedRows {
  const texts: string[] = []
  const lengths = new Int32Array(rows.length * 3)
  const numbers = new Float64Array(rows.length * 2)
  const others: Row[] = []
  const otherAt: number[] = []
  let c = 0
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    if (!commonRow(row)) {
      others.push(row)
      otherAt.push(i)
      continue
    }
    const payload = row[9] as string
    texts.push(row[1], row[2], payload)
    lengths[c * 3] = row[1].length
    lengths[c * 3 + 1] = row[2].length
    lengths[c * 3 + 2] = payload.length
    numbers[c * 2] = row[0]
    numbers[c * 2 + 1] = row[3]
    c++
  }
  return { count: rows.length, text: texts.join(''), lengths, numbers, others, otherAt }
}

export function unpackRows(packed: PackedRows): Row[] {
  const { text, lengths, numbers, others, otherAt } = packed
  const rows = new Array<Row>(packed.count)
  let at = 0
  let c = 0
  let k = 0
  for (let i = 0; i < packed.count; i++) {
    if (otherAt[k] === i) {
      rows[i] = others[k++]!
      continue
    }
    const id = text.slice(at, (at += lengths[c * 3]!))
    const key = text.slice(at, (at += lengths[c * 3 + 1]!))
    const payload = text.slice(at, (at += lengths[c * 3 + 2]!))
    rows[i] = [numbers[c * 2]!, id, key, numbers[c * 2 + 1]!, null, null, null, 0, null, payload, null, null]
    c++
  }
  return rows
}

/**
 * Results as they cross back: the offset of each row that landed where its row says (its id, its
 * partition, not a duplicate), and any other result whole.
 */
export interface PackedResults {
  offsets: Float64Array<ArrayBuffer>
  others: WriteResult[]
  otherAt: number[]
}

export function packResults(rows: readonly Row[], results: readonly WriteResult[]): PackedResults {
  const offsets = new Float64Array(results.length)
  const others: WriteResult[] = []
  const otherAt: number[] = []
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!
    if (r.duplicate || r.refused !== undefined || r.id !== rows[i]![1] || r.partition !== rows[i]![0]) {
      others.push(r)
      otherAt.push(i)
    } else offsets[i] = r.offset
  }
  return { offsets, others, otherAt }
}

export function unpackResults(rows: readonly Row[], packed: PackedResults): WriteResult[] {
  const { offsets, others, otherAt } = packed
  const results = new Array<WriteResult>(offsets.length)
  let k = 0
  for (let i = 0; i < offsets.length; i++) {
    if (otherAt[k] === i) results[i] = others[k++]!
    else results[i] = { id: rows[i]![1], partition: rows[i]![0], offset: offsets[i]!, duplicate: false }
  }
  return results
}

/** SQLite's primary result codes that blame the row being written, not the database. */
const ROW_AT_FAULT = new Set([18 /* TOOBIG */, 19 /* CONSTRAINT */, 20 /* MISMATCH */, 25 /* RANGE */])

/**
 * Whether an insert failed because of the row (a value SQLite cannot store, or node:sqlite cannot bind)
 * rather than the database (disk, lock, I/O): the one classifier of the embedded log's write errors.
 */
export function rowAtFault(error: unknown): boolean {
  const errcode = (error as { errcode?: number }).errcode
  if (errcode !== undefined) return ROW_AT_FAULT.has(errcode & 0xff)
  const code = (error as { code?: string }).code
  return code === 'ERR_INVALID_ARG_TYPE' || code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_OUT_OF_RANGE'
}

export class LogWriter {
  private readonly insert: StatementSync
  private readonly selectOffsets: StatementSync
  private readonly updateOffset: StatementSync
  private readonly lastAppendedAt: StatementSync
  private readonly findIdempotencyKey: StatementSync
  private readonly insertIdempotencyKey: StatementSync
  private readonly getTxn: StatementSync
  private readonly openTxn: StatementSync
  private readonly hasPart: StatementSync
  private readonly insertPart: StatementSync
  private readonly commitTxn: StatementSync
  /** Transactions committed. */
  commits = 0

  constructor(private readonly db: DatabaseSync) {
    this.insert = db.prepare(INSERT_RECORD)
    // Read as arrays: node:sqlite makes each row object a dictionary of its own shape, and reading a
    // property of a new shape in every commit made V8 throw away and recompile this class's code.
    this.selectOffsets = db.prepare('SELECT next_offset FROM partitions ORDER BY partition')
    this.selectOffsets.setReturnArrays(true)
    this.updateOffset = db.prepare('UPDATE partitions SET next_offset = ? WHERE partition = ?')
    this.lastAppendedAt = db.prepare('SELECT appended_at FROM records ORDER BY seq DESC LIMIT 1')
    this.lastAppendedAt.setReturnArrays(true)
    this.findIdempotencyKey = db.prepare('SELECT id, partition, offset FROM idempotency_keys WHERE key = ?')
    this.insertIdempotencyKey = db.prepare('INSERT INTO idempotency_keys (key, id, partition, offset) VALUES (?, ?, ?, ?)')
    this.getTxn = db.prepare('SELECT opened_at, parts, committed_at, aborted_at FROM txns WHERE txn = ?')
    this.openTxn = db.prepare('INSERT INTO txns (txn, opened_at, parts) VALUES (?, ?, 1) ON CONFLICT (txn) DO UPDATE SET parts = parts + 1')
    this.hasPart = db.prepare('SELECT 1 AS ok FROM txn_parts WHERE txn = ? AND seq = ?')
    this.insertPart = db.prepare('INSERT INTO txn_parts (txn, seq, partition, offset) VALUES (?, ?, ?, ?)')
    this.commitTxn = db.prepare('UPDATE txns SET committed_at = ?, marker_partition = ?, marker_offset = ? WHERE txn = ?')
  }

  /** Why a transaction's part or marker cannot be written now, or undefined when it can. */
  private txnRefusal([id, seq, parts, timeoutMs]: TxnRow, nowMs: number): string | undefined {
    const state = this.getTxn.get(id) as TxnState | undefined
    const name = `transaction ${JSON.stringify(id)}`
    if (state?.aborted_at != null) return `${name} was aborted (no marker within txnTimeoutMs); write it again under a new id`
    if (state?.committed_at != null) return `${name} is committed already; write a new transaction under a new id`
    if (state !== undefined && nowMs - state.opened_at > timeoutMs) return `${name} was opened ${nowMs - state.opened_at} ms ago, more than txnTimeoutMs (${timeoutMs} ms): it is being aborted`
    if (seq !== -1) return seq >= 0 && this.hasPart.get(id, seq) !== undefined ? `${name} has a part ${seq} already` : undefined
    if (state === undefined) return `${name} has no parts in the log: its marker must follow them`
    if (parts >= 0 && parts !== state.parts) return `${name} has ${state.parts} parts in the log, but its marker closes ${parts}: not committed`
    return undefined
  }

  /**
   * Writes the rows in one transaction; returns where each landed. A row SQLite refuses for what it
   * holds is left out (its result says why) and the others are committed; any other failure rolls
   * the whole transaction back and throws.
   */
  commit(rows: readonly Row[]): WriteResult[] {
    const results: WriteResult[] = []
    if (rows.length === 0) return results
    this.db.exec('BEGIN IMMEDIATE')
    try {
      const offsets = this.selectOffsets.all() as unknown as Array<[nextOffset: number]>
      const next: number[] = []
      for (let p = 0; p < offsets.length; p++) next.push(offsets[p]![0])
      const first = next.slice()
      // appended_at never goes backwards, even if the clocks of two writers differ a little.
      const last = this.lastAppendedAt.get() as unknown as [appendedAt: number] | undefined
      const appendedAt = Math.max(Date.now(), last?.[0] ?? 0)
      const seenKeys = new Map<string, AppendResult>()
      for (const row of rows) {
        const [partition, id, key, createdAt, notBefore, target, idempotencyKey, attempts, headers, payload, failures, txn] = row
        if (idempotencyKey !== null) {
          const earlier = seenKeys.get(idempotencyKey) ?? (this.findIdempotencyKey.get(idempotencyKey) as AppendResult | undefined)
          if (earlier) {
            results.push({ id: earlier.id, partition: earlier.partition, offset: earlier.offset, duplicate: true })
            continue
          }
        }
        const offset = next[partition]!
        const txnRefused = txn === null ? undefined : this.txnRefusal(txn, appendedAt)
        if (txnRefused !== undefined) {
          results.push({ id, partition, offset: -1, duplicate: false, refused: txnRefused, txnRefused: true })
          continue
        }
        // Milliseconds in created_at (what older readers and `tail --from TIME` use); microseconds beside them.
        const createdAtUs = Number.isInteger(createdAt) ? null : createdAtMicros(createdAt)
        try {
          // A failed statement undoes only itself: the transaction and the rows before it stay.
          this.insert.run(partition, offset, id, key, appendedAt, Math.floor(createdAt), notBefore, target, idempotencyKey, attempts, headers, payload, failures, createdAtUs)
        } catch (error) {
          if (!rowAtFault(error)) throw error
          results.push({ id, partition, offset: -1, duplicate: false, refused: (error as Error).message })
          continue
        }
        next[partition]!++
        if (txn !== null && txn[1] !== -1) {
          // A part numbered by the log (added over HTTP, one request at a time) is the next one.
          const seq = txn[1] >= 0 ? txn[1] : ((this.getTxn.get(txn[0]) as TxnState | undefined)?.parts ?? 0)
          this.openTxn.run(txn[0], appendedAt)
          this.insertPart.run(txn[0], seq, partition, offset)
        } else if (txn !== null) this.commitTxn.run(appendedAt, partition, offset, txn[0])
        const result = { id, partition, offset, duplicate: false }
        if (idempotencyKey !== null) {
          this.insertIdempotencyKey.run(idempotencyKey, id, partition, offset)
          seenKeys.set(idempotencyKey, result)
        }
        results.push(result)
      }
      for (let p = 0; p < next.length; p++) if (next[p] !== first[p]) this.updateOffset.run(next[p]!, p)
      this.db.exec('COMMIT')
      this.commits++
      return results
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw error
    }
  }
}
