/**
 * The state store of an SQS namespace: what SQS cannot hold, kept durably outside the queues in one
 * SQLite file of the state directory (`sqs-state/<namespace>.sqlite`), as Netflix keeps transaction parts
 * in its durable store and enqueues only the marker:
 *
 * - Transactions: each part is stored here (not sent), by transaction and sequence number; only the
 *   completion marker goes to the queue. A consumer that receives the marker reads the parts from here,
 *   applies them in order and keeps per-target progress here, so a re-delivered marker resumes after the
 *   last part made durable. A transaction with no marker within txnTimeoutMs is aborted here.
 * - Payloads above SQS's 256 KiB message limit: stored here as ordered chunks with the SHA-256 of the
 *   whole (one SQLite transaction: all chunks or none), and the message carries a reference
 *   (`wal-payload-ref`) that every reader resolves. A chunk missing or damaged makes the message poison.
 *
 * Producers and consumers of such a namespace must share this state directory (one host, or a shared
 * volume): a reader that does not find what a message refers to reports it as poison, never applies it.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'

import type { AbortedTxn } from '../backend.js'
import { isStorageError, unavailable } from '../embedded/errors.js'

const WHAT = "the SQS namespace's state store"

const DDL = `
CREATE TABLE IF NOT EXISTS payloads (sha TEXT PRIMARY KEY, chunks INTEGER NOT NULL, bytes INTEGER NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS payload_chunks (sha TEXT NOT NULL, idx INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (sha, idx));
CREATE TABLE IF NOT EXISTS txns (
  txn TEXT PRIMARY KEY,
  opened_at INTEGER NOT NULL,
  committed_at INTEGER,
  aborted_at INTEGER,
  partition INTEGER NOT NULL,
  marker TEXT
);
CREATE INDEX IF NOT EXISTS txns_open ON txns (opened_at) WHERE committed_at IS NULL AND aborted_at IS NULL;
CREATE TABLE IF NOT EXISTS txn_parts (txn TEXT NOT NULL, seq INTEGER NOT NULL, envelope TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (txn, seq));
CREATE TABLE IF NOT EXISTS txn_progress (
  target TEXT NOT NULL,
  txn TEXT NOT NULL,
  applied_seq INTEGER NOT NULL,
  state TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (target, txn)
);
`

/** How long what the store holds for messages is kept after its last use: beyond SQS's longest retention (14 days). */
export const STORE_KEEP_MS = 15 * 24 * 3_600_000
/** Bytes per stored chunk of a large payload. */
export const STORE_CHUNK_BYTES = 1024 * 1024
const LOCK_TIMEOUT_MS = 30_000

export interface StoredTxn {
  id: string
  state: 'open' | 'committed' | 'aborted'
  openedAtMs: number
  committedAtMs: number | null
  abortedAtMs: number | null
  partition: number
  /** The marker's envelope, once committed by a producer. */
  marker: string | null
  parts: Array<{ seq: number; envelope: string }>
}

export type TxnProgress = { appliedSeq: number; state: 'applying' | 'applied' | 'aborted'; atMs: number }

export class SqsStateStore {
  private constructor(
    private readonly db: DatabaseSync,
    readonly path: string,
  ) {}

  static pathOf(stateDir: string, namespace: string): string {
    return join(stateDir, 'sqs-state', `${encodeURIComponent(namespace)}.sqlite`)
  }

  /** Opens (creating with `create`) the store; undefined when it does not exist and `create` is false. */
  static open(path: string, create: boolean): SqsStateStore | undefined {
    if (!create && !existsSync(path)) return undefined
    let db: DatabaseSync | undefined
    try {
      mkdirSync(dirname(path), { recursive: true })
      db = new DatabaseSync(path, { timeout: LOCK_TIMEOUT_MS })
      db.exec('PRAGMA journal_mode = WAL')
      // What a producer acks must survive a power loss, as the queue's copy would.
      db.exec('PRAGMA synchronous = FULL')
      db.exec(DDL)
      return new SqsStateStore(db, path)
    } catch (error) {
      db?.close()
      throw isStorageError(error) ? unavailable(path, 'open', error, WHAT) : error
    }
  }

  private inTransaction<T>(work: () => T): T {
    try {
      this.db.exec('BEGIN IMMEDIATE')
      try {
        const out = work()
        this.db.exec('COMMIT')
        return out
      } catch (error) {
        if (this.db.isTransaction) this.db.exec('ROLLBACK')
        throw error
      }
    } catch (error) {
      throw isStorageError(error) ? unavailable(this.path, 'write to', error, WHAT) : error
    }
  }

  // ---- large payloads

  /** Stores a value as ordered chunks (all or nothing); returns its SHA-256 (hex), the reference. */
  putPayload(value: Buffer, nowMs: number): { sha: string; chunks: number } {
    const sha = createHash('sha256').update(value).digest('hex')
    const chunks = Math.max(1, Math.ceil(value.length / STORE_CHUNK_BYTES))
    this.inTransaction(() => {
      const known = this.db.prepare('SELECT chunks FROM payloads WHERE sha = ?').get(sha) as { chunks: number } | undefined
      const complete = known !== undefined && (this.db.prepare('SELECT count(*) AS n FROM payload_chunks WHERE sha = ?').get(sha) as { n: number }).n === known.chunks
      if (complete) {
        // Referred to again (a DLQ or delayed copy): kept as long as the newest reference may live.
        this.db.prepare('UPDATE payloads SET at = max(at, ?) WHERE sha = ?').run(nowMs, sha)
        return
      }
      this.db.prepare('DELETE FROM payload_chunks WHERE sha = ?').run(sha)
      this.db.prepare('INSERT OR REPLACE INTO payloads (sha, chunks, bytes, at) VALUES (?, ?, ?, ?)').run(sha, chunks, value.length, nowMs)
      const insert = this.db.prepare('INSERT INTO payload_chunks (sha, idx, value) VALUES (?, ?, ?)')
      for (let i = 0; i < chunks; i++) insert.run(sha, i, value.subarray(i * STORE_CHUNK_BYTES, Math.min(value.length, (i + 1) * STORE_CHUNK_BYTES)))
    })
    return { sha, chunks }
  }

  /** The value a reference names, put together from its chunks; or why it cannot be. */
  getPayload(sha: string, maxBytes: number): { value: Buffer } | { why: string } {
    const head = this.db.prepare('SELECT chunks, bytes FROM payloads WHERE sha = ?').get(sha) as { chunks: number; bytes: number } | undefined
    if (head === undefined) return { why: `the state store ${this.path} holds no payload ${sha}` }
    if (head.bytes > maxBytes) return { why: `it is ${head.bytes} bytes, above the namespace's maxPayloadBytes (${maxBytes})` }
    const rows = this.db.prepare('SELECT idx, value FROM payload_chunks WHERE sha = ? ORDER BY idx').all(sha) as Array<{ idx: number; value: Uint8Array }>
    for (let i = 0; i < head.chunks; i++) {
      if (rows[i]?.idx !== i) return { why: `chunk ${i} of ${head.chunks} is missing from the state store` }
    }
    if (rows.length !== head.chunks) return { why: `the state store holds ${rows.length} chunks where ${head.chunks} were written` }
    const value = Buffer.concat(rows.map((r) => r.value))
    if (value.length !== head.bytes || createHash('sha256').update(value).digest('hex') !== sha) {
      return { why: 'the SHA-256 of its chunks put together does not match its reference (a chunk is damaged)' }
    }
    return { value }
  }

  // ---- transactions

  /**
   * Stores parts (one SQLite transaction). A part of a transaction that is committed, aborted, or open
   * for longer than `timeoutMs` is refused (returned with why); storing the same part (sequence number)
   * again replaces it; a part without one (seq < 0) comes after those stored.
   */
  putParts(parts: ReadonlyArray<{ txn: string; seq: number; envelope: string; partition: number }>, nowMs: number, timeoutMs: number): Array<string | undefined> {
    return this.inTransaction(() => {
      const get = this.db.prepare('SELECT opened_at, committed_at, aborted_at FROM txns WHERE txn = ?')
      const open = this.db.prepare('INSERT INTO txns (txn, opened_at, partition) VALUES (?, ?, ?)')
      const put = this.db.prepare('INSERT OR REPLACE INTO txn_parts (txn, seq, envelope, at) VALUES (?, ?, ?, ?)')
      const next = this.db.prepare('SELECT coalesce(max(seq), -1) + 1 AS n FROM txn_parts WHERE txn = ?')
      return parts.map((p) => {
        const row = get.get(p.txn) as { opened_at: number; committed_at: number | null; aborted_at: number | null } | undefined
        if (row === undefined) open.run(p.txn, nowMs, p.partition)
        else if (row.aborted_at !== null) return `transaction ${JSON.stringify(p.txn)} was aborted (no marker within txnTimeoutMs)`
        else if (row.committed_at !== null) return `transaction ${JSON.stringify(p.txn)} is already committed: a part cannot follow its marker`
        else if (row.opened_at < nowMs - timeoutMs) return `transaction ${JSON.stringify(p.txn)} was opened more than txnTimeoutMs (${timeoutMs} ms) ago: it is aborted`
        // A part without a sequence number (HTTP parts requests, one after another): the next one.
        const seq = p.seq >= 0 ? p.seq : (next.get(p.txn) as { n: number }).n
        put.run(p.txn, seq, p.envelope, nowMs)
        return undefined
      })
    })
  }

  /**
   * Commits a transaction before its marker is sent: refused (with why) when it has no parts, was
   * aborted, or has fewer parts than the marker counts (null: the parts stored). A committed one may be
   * committed again (the marker sent again after an unknown outcome). Returns the part count.
   */
  commit(txn: string, parts: number | null, marker: string, nowMs: number): { parts: number } | { why: string } {
    return this.inTransaction(() => {
      const row = this.db.prepare('SELECT aborted_at FROM txns WHERE txn = ?').get(txn) as { aborted_at: number | null } | undefined
      const stored = (this.db.prepare('SELECT count(*) AS n FROM txn_parts WHERE txn = ?').get(txn) as { n: number }).n
      if (row === undefined || stored === 0) return { why: `transaction ${JSON.stringify(txn)} has no parts in the state store: write its parts first` }
      if (row.aborted_at !== null) return { why: `transaction ${JSON.stringify(txn)} was aborted (no marker within txnTimeoutMs): its parts are never applied` }
      if (parts !== null && parts !== stored) return { why: `the marker closes ${parts} parts, but the state store holds ${stored} of transaction ${JSON.stringify(txn)}` }
      this.db.prepare('UPDATE txns SET committed_at = coalesce(committed_at, ?), marker = ? WHERE txn = ?').run(nowMs, marker, txn)
      return { parts: stored }
    })
  }

  /** Undoes a commit whose marker was not sent (SQS refused it). */
  uncommit(txn: string): void {
    this.db.prepare('UPDATE txns SET committed_at = NULL, marker = NULL WHERE txn = ? AND aborted_at IS NULL').run(txn)
  }

  /**
   * A marker was received: its transaction is committed (unless aborted first). Returns the transaction
   * as stored, or undefined when the store has none of it.
   */
  received(txn: string, nowMs: number): StoredTxn | undefined {
    this.db.prepare('UPDATE txns SET committed_at = ? WHERE txn = ? AND committed_at IS NULL AND aborted_at IS NULL').run(nowMs, txn)
    return this.transaction(txn)
  }

  transaction(txn: string): StoredTxn | undefined {
    const row = this.db.prepare('SELECT * FROM txns WHERE txn = ?').get(txn) as
      | { txn: string; opened_at: number; committed_at: number | null; aborted_at: number | null; partition: number; marker: string | null }
      | undefined
    if (row === undefined) return undefined
    const parts = this.db.prepare('SELECT seq, envelope FROM txn_parts WHERE txn = ? ORDER BY seq').all(txn) as Array<{ seq: number; envelope: string }>
    return {
      id: row.txn,
      state: row.aborted_at !== null ? 'aborted' : row.committed_at !== null ? 'committed' : 'open',
      openedAtMs: row.opened_at,
      committedAtMs: row.committed_at,
      abortedAtMs: row.aborted_at,
      partition: row.partition,
      marker: row.marker,
      parts: parts.map((p) => ({ seq: p.seq, envelope: p.envelope })),
    }
  }

  progress(target: string, txn: string): TxnProgress | undefined {
    const row = this.db.prepare('SELECT applied_seq, state, at FROM txn_progress WHERE target = ? AND txn = ?').get(target, txn) as
      | { applied_seq: number; state: TxnProgress['state']; at: number }
      | undefined
    return row === undefined ? undefined : { appliedSeq: row.applied_seq, state: row.state, atMs: row.at }
  }

  setProgress(target: string, txn: string, appliedSeq: number, done: boolean, nowMs: number): void {
    this.db
      .prepare(
        "INSERT INTO txn_progress (target, txn, applied_seq, state, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, txn) DO UPDATE SET applied_seq = max(applied_seq, excluded.applied_seq), state = CASE WHEN state = 'applied' THEN state ELSE excluded.state END, at = excluded.at",
      )
      .run(target, txn, appliedSeq, done ? 'applied' : 'applying', nowMs)
  }

  /**
   * Aborts the transactions open for longer than `timeoutMs`, then claims for `target` the aborted ones
   * it has not filed yet (the caller files a DLQ entry for each, or gives the claim back with `unclaim`).
   */
  abortExpired(target: string, nowMs: number, timeoutMs: number): AbortedTxn[] {
    return this.inTransaction(() => {
      this.db.prepare('UPDATE txns SET aborted_at = ? WHERE committed_at IS NULL AND aborted_at IS NULL AND opened_at < ?').run(nowMs, nowMs - timeoutMs)
      const rows = this.db
        .prepare('SELECT t.txn, t.opened_at, t.partition, (SELECT count(*) FROM txn_parts p WHERE p.txn = t.txn) AS parts FROM txns t WHERE t.aborted_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM txn_progress g WHERE g.target = ? AND g.txn = t.txn) LIMIT 100')
        .all(target) as Array<{ txn: string; opened_at: number; partition: number; parts: number }>
      const claim = this.db.prepare("INSERT INTO txn_progress (target, txn, applied_seq, state, at) VALUES (?, ?, -1, 'aborted', ?)")
      for (const row of rows) claim.run(target, row.txn, nowMs)
      return rows.map((row) => ({ id: row.txn, partCount: row.parts, openedAtMs: row.opened_at, partition: row.partition }))
    })
  }

  unclaim(target: string, txn: string): void {
    this.db.prepare("DELETE FROM txn_progress WHERE target = ? AND txn = ? AND state = 'aborted'").run(target, txn)
  }

  /**
   * Forgets what no message can refer to any more: payloads last referred to, and transactions finished
   * (committed or aborted), before `beforeMs` (SQS keeps a message 14 days at most). Returns how many.
   */
  prune(beforeMs: number): { payloads: number; transactions: number } {
    return this.inTransaction(() => {
      this.db.prepare('DELETE FROM payload_chunks WHERE sha IN (SELECT sha FROM payloads WHERE at < ?)').run(beforeMs)
      const payloads = Number(this.db.prepare('DELETE FROM payloads WHERE at < ?').run(beforeMs).changes)
      const old = "SELECT txn FROM txns WHERE coalesce(committed_at, aborted_at) < ?"
      this.db.prepare(`DELETE FROM txn_parts WHERE txn IN (${old})`).run(beforeMs)
      this.db.prepare(`DELETE FROM txn_progress WHERE txn IN (${old})`).run(beforeMs)
      const transactions = Number(this.db.prepare('DELETE FROM txns WHERE coalesce(committed_at, aborted_at) < ?').run(beforeMs).changes)
      return { payloads, transactions }
    })
  }

  close(): void {
    this.db.close()
  }
}
