/**
 * The embedded key-value target: applies put/delete/batch operations to tables in a local SQLite file,
 * so the whole pipeline runs with zero servers. Like Cassandra's USING TIMESTAMP, a write takes effect
 * only if it is not older (by createdAt, then id) than what the item holds, deletes leave a tombstone,
 * so a late retry or a replay never overwrites newer data and the end state equals the last write per key.
 * Writes are group-committed: `flush()` commits (the consumer flushes before it commits its offsets).
 *
 * Another process may hold the store's write lock (another consumer, or one frozen mid-transaction).
 * Waiting for it never blocks the event loop: SQLite busy-waits at most BUSY_WAIT_MS at a time and the
 * rest of the wait is timers, so lease heartbeats, other targets and signals keep going. After
 * LOCK_WAIT_MS the apply fails as an infrastructure error and the pipeline pauses only this target.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'

import type { Mutation } from '../../envelope/envelope.js'
import { BUSY_WAIT_MS, isBusy, withLockRetries } from '../../io/sqlite-lock.js'
import { formatDurationMs } from '../../time.js'
import { canonicalKey, parseOperation, partsOf, type PartOperation } from '../operations.js'
import { TargetError, type ApplyContext, type BatchContext, type Target } from '../target.js'

/** How long an apply waits for another process's write lock before the target is paused. */
const LOCK_WAIT_MS = 2000
/** How long opening the store waits for another process's lock (one creating it, say). */
const OPEN_WAIT_MS = 30_000

const APPLIED: Promise<void> = Promise.resolve()

const DDL = `
CREATE TABLE IF NOT EXISTS items (
  tbl TEXT NOT NULL,
  pk TEXT NOT NULL,
  item TEXT,
  deleted INTEGER NOT NULL,
  written_at INTEGER NOT NULL,
  mutation_id TEXT NOT NULL,
  PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;
-- Parts of a batch already applied: a retry skips them.
CREATE TABLE IF NOT EXISTS batch_progress (
  mutation_id TEXT NOT NULL,
  part INTEGER NOT NULL,
  PRIMARY KEY (mutation_id, part)
) WITHOUT ROWID;
`

export interface KvTargetOptions {
  name: string
  path: string
}

/** One item as the store holds it. */
export interface KvItem {
  table: string
  key: string
  item: Record<string, unknown> | null
  deleted: boolean
  writtenAtMs: number
  mutationId: string
}

export class KvTarget implements Target {
  readonly name: string
  readonly path: string
  private readonly db: DatabaseSync
  private readonly write: StatementSync
  private readonly partDone: StatementSync
  private readonly markPart: StatementSync
  private readonly clearParts: StatementSync
  private inTransaction = false
  /** The write lock being waited for, shared by the applies that need it meanwhile. */
  private locking: Promise<void> | undefined

  private constructor(name: string, path: string, db: DatabaseSync) {
    this.name = name
    this.path = path
    this.db = db
    // Row values compare (written_at, mutation_id): the newer write wins, whatever the order of arrival.
    this.write = db.prepare(`INSERT INTO items (tbl, pk, item, deleted, written_at, mutation_id) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (tbl, pk) DO UPDATE SET item = excluded.item, deleted = excluded.deleted,
        written_at = excluded.written_at, mutation_id = excluded.mutation_id
      WHERE (excluded.written_at, excluded.mutation_id) >= (items.written_at, items.mutation_id)`)
    this.partDone = db.prepare('SELECT 1 AS done FROM batch_progress WHERE mutation_id = ? AND part = ?')
    this.markPart = db.prepare('INSERT OR IGNORE INTO batch_progress (mutation_id, part) VALUES (?, ?)')
    this.clearParts = db.prepare('DELETE FROM batch_progress WHERE mutation_id = ?')
  }

  /**
   * Opens the store, creating it on first use. Consumers started together open a new store at once: one
   * of them turns it to WAL mode and creates the tables while the others get SQLITE_BUSY (at times
   * without SQLite's busy wait), so the set-up is tried again, off the event loop, for OPEN_WAIT_MS.
   */
  static async open(options: KvTargetOptions): Promise<KvTarget> {
    let db: DatabaseSync | undefined
    try {
      mkdirSync(dirname(options.path), { recursive: true })
      db = new DatabaseSync(options.path, { timeout: BUSY_WAIT_MS })
      const setUp = db.exec.bind(db)
      await withLockRetries(() => {
        setUp('PRAGMA journal_mode = WAL')
        setUp('PRAGMA synchronous = FULL')
        setUp(DDL)
      }, OPEN_WAIT_MS)
      return new KvTarget(options.name, options.path, db)
    } catch (error) {
      db?.close()
      throw new TargetError(`cannot open the kv store ${options.path}: ${(error as Error).message}`, {
        errorClass: 'infrastructure',
        code: 'KV_UNAVAILABLE',
        cause: error,
      })
    }
  }

  /** Takes the store's write lock (a transaction the next flush commits), waiting off the event loop. */
  private lock(signal: AbortSignal): Promise<void> {
    this.locking ??= withLockRetries(
      () => {
        if (this.inTransaction) return
        this.db.exec('BEGIN IMMEDIATE')
        this.inTransaction = true
      },
      LOCK_WAIT_MS,
      signal,
    )
      .catch((error: unknown) => {
        if (isBusy(error)) {
          throw new TargetError(`kv store ${this.path} is locked by another process (waited ${formatDurationMs(LOCK_WAIT_MS)})`, {
            errorClass: 'infrastructure',
            code: 'KV_LOCKED',
            cause: error,
          })
        }
        throw this.storeError(error)
      })
      .finally(() => (this.locking = undefined))
    return this.locking
  }

  private storeError(error: unknown): TargetError {
    if (error instanceof TargetError) return error
    const code = ((error as { errcode?: number }).errcode ?? 0) & 0xff
    // Busy (another writer holds the store too long), full disk, I/O: the store, not the mutation.
    return new TargetError(`kv store ${this.path}: ${(error as Error).message}`, {
      errorClass: code === 5 || code === 6 || code === 10 || code === 13 || code === 14 ? 'infrastructure' : 'retryable',
      code: `SQLITE_${code}`,
      cause: error,
    })
  }

  private applyPart(mutation: Mutation, part: PartOperation): void {
    if (part.op === 'delete' && ((part.scope !== undefined && part.scope !== 'row') || part.range !== undefined)) {
      throw new TargetError(`the kv target deletes one item by its key; "scope": "${part.scope ?? 'range'}" needs a wide-row target such as Cassandra`, {
        errorClass: 'fatal',
        code: 'NOT_AN_OPERATION',
      })
    }
    const pk = canonicalKey(part.key)
    if (part.op === 'put') this.write.run(part.table, pk, JSON.stringify(part.item), 0, mutation.createdAtMs, mutation.id)
    else this.write.run(part.table, pk, null, 1, mutation.createdAtMs, mutation.id)
  }

  /** Applies the parts not applied yet; a batch's parts are recorded as done, so a retry skips them. */
  private applyParts(mutation: Mutation): void {
    const parts = partsOf(parseOperation(mutation, { exactItems: true }))
    if (parts.length === 1) {
      // One statement, the last thing applyPart does: SQLite undoes a failed statement by itself, so a
      // put or delete needs no savepoint (two statements fewer per mutation).
      try {
        this.applyPart(mutation, parts[0]!)
      } catch (error) {
        throw this.storeError(error)
      }
      return
    }
    try {
      this.db.exec('SAVEPOINT mutation')
      try {
        for (let i = 0; i < parts.length; i++) {
          if (this.partDone.get(mutation.id, i)) continue
          this.applyPart(mutation, parts[i]!)
          this.markPart.run(mutation.id, i)
        }
        this.clearParts.run(mutation.id)
        this.db.exec('RELEASE mutation')
      } catch (error) {
        this.db.exec('ROLLBACK TO mutation')
        this.db.exec('RELEASE mutation')
        throw error
      }
    } catch (error) {
      throw this.storeError(error)
    }
  }

  apply(mutation: Mutation, context?: ApplyContext): Promise<void> {
    return this.holdingLock(context?.signal, () => this.applyParts(mutation))
  }

  /** Applies the mutations in order inside a savepoint: one that fails rolls the others back with it. */
  applyBatch(mutations: readonly Mutation[], context?: BatchContext): Promise<void> {
    return this.holdingLock(context?.signal, () => {
      try {
        this.db.exec('SAVEPOINT batch')
      } catch (error) {
        throw this.storeError(error)
      }
      try {
        for (const mutation of mutations) this.applyParts(mutation)
        this.db.exec('RELEASE batch')
      } catch (error) {
        try {
          this.db.exec('ROLLBACK TO batch')
          this.db.exec('RELEASE batch')
        } catch {
          // SQLite rolled the whole transaction back (some I/O errors do): nothing of the batch is left.
        }
        throw this.storeError(error)
      }
    })
  }

  /**
   * Runs `write` holding the store's write lock (in the transaction the next flush commits). Uncontended,
   * the lock is taken at once and `write` runs now: applies then run in the order they were given, and
   * with no promise of their own.
   */
  private holdingLock(signal: AbortSignal | undefined, write: () => void): Promise<void> {
    try {
      if (!this.inTransaction && this.locking === undefined) {
        try {
          this.db.exec('BEGIN IMMEDIATE')
          this.inTransaction = true
        } catch (error) {
          if (!isBusy(error)) throw this.storeError(error)
        }
      }
      if (this.inTransaction) {
        write()
        return APPLIED
      }
    } catch (error) {
      return Promise.reject(error)
    }
    return this.waitForLock(signal, write)
  }

  private async waitForLock(signal: AbortSignal | undefined, write: () => void): Promise<void> {
    // Checked again after each wait: a flush may have committed (and so ended) the transaction meanwhile.
    while (!this.inTransaction) await this.lock(signal ?? new AbortController().signal)
    write()
  }

  async flush(): Promise<void> {
    if (!this.inTransaction) return
    this.inTransaction = false
    try {
      this.db.exec('COMMIT')
    } catch (error) {
      // A full disk, an I/O error: what was applied since the last flush is rolled back, so nothing may
      // be committed past it. Not an infrastructure error (those pause and flush again later): the
      // consumer ends, and the next one applies these mutations again.
      if (this.db.isTransaction) {
        try {
          this.db.exec('ROLLBACK')
        } catch {
          // Rolled back by SQLite already.
        }
      }
      const code = ((error as { errcode?: number }).errcode ?? 0) & 0xff
      throw new TargetError(`kv store ${this.path}: cannot commit what was applied: ${(error as Error).message}`, { errorClass: 'retryable', code: `SQLITE_${code}`, cause: error })
    }
  }

  /** The items of a table (or all), for `wal` commands and tests. */
  items(table?: string): KvItem[] {
    const rows = (
      table === undefined
        ? this.db.prepare('SELECT * FROM items ORDER BY tbl, pk').all()
        : this.db.prepare('SELECT * FROM items WHERE tbl = ? ORDER BY pk').all(table)
    ) as Array<{ tbl: string; pk: string; item: string | null; deleted: number; written_at: number; mutation_id: string }>
    return rows.map((r) => ({
      table: r.tbl,
      key: r.pk,
      item: r.item === null ? null : (JSON.parse(r.item) as Record<string, unknown>),
      deleted: r.deleted === 1,
      writtenAtMs: r.written_at,
      mutationId: r.mutation_id,
    }))
  }

  async close(): Promise<void> {
    if (this.inTransaction) await this.flush()
    if (this.db.isOpen) this.db.close()
  }
}
