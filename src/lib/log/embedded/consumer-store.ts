/**
 * Consumer state of the embedded log, in the namespace's own SQLite file: per target, partition leases
 * (one owner at a time, renewed by heartbeat, taken over when they expire), committed offsets, the
 * schedule of waiting mutations, the DLQ and each mutation's history.
 *
 * Fencing: every acquisition of a lease gives it a new, higher epoch (renewals keep it). A commit names
 * the epoch of each partition it touches and writes offsets, schedule changes, dead letters and history
 * in one transaction only if the committer still holds every one of them with that epoch — a consumer
 * that was frozen (SIGSTOP, a long pause) while another took its partitions over cannot write anything
 * it had in memory. Committed offsets only move forward.
 *
 * Waiting for the write lock never blocks the event loop for long: SQLite's own busy wait is capped at
 * BUSY_WAIT_MS, and transactions retry asynchronously until the lock timeout.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite'

import { decodeEnvelopeLine, encodeEnvelope } from '../../envelope/envelope.js'
import type { AbortedTxn, ClaimResult, ConsumerCommit, ConsumerStore, HistoryEvent, ScheduledMutation, ShardRequest } from '../backend.js'
import { partitionForKey } from '../partitioner.js'
import { abortedTxnEntry } from '../../txn/txn.js'
import { BUSY_WAIT_MS, withLockRetries } from '../../io/sqlite-lock.js'
import { replaysOf } from '../../dlq/replays.js'
import { leasedError } from '../leased.js'
import { isStorageError, unavailable } from './errors.js'
import { ADD_HISTORY_DELIVERY, ADD_LEASE_EPOCH, CONSUMER_DDL } from './schema.js'

interface LeaseRow {
  owner: string
  expires_at: number
  epoch: number
}

function partitionList(partitions: readonly number[]): string {
  return JSON.stringify(partitions)
}

export class EmbeddedConsumerStore implements ConsumerStore {
  private readonly getLease: StatementSync
  private readonly putLease: StatementSync
  private readonly dropLease: StatementSync
  private readonly putOffset: StatementSync
  private readonly insertScheduled: StatementSync
  private readonly updateScheduled: StatementSync
  private readonly deleteScheduled: StatementSync
  private readonly insertDead: StatementSync
  private readonly insertHistory: StatementSync
  private readonly putTxnProgress: StatementSync
  /** dueScheduled's query, prepared on first use (a consumer asks it on every round of its loop). */
  private selectDue: StatementSync | undefined
  /** The entries of a key after one of its entries, in order: a due head's followers. */
  private selectFollowers: StatementSync | undefined

  private constructor(
    private readonly db: DatabaseSync,
    private readonly namespace: string,
    private readonly partitions: number,
    readonly target: string,
    private readonly lockTimeoutMs: number,
    private readonly path: string,
  ) {
    this.getLease = db.prepare('SELECT owner, expires_at, epoch FROM leases WHERE target = ? AND partition = ?')
    this.putLease = db.prepare(
      'INSERT INTO leases (target, partition, owner, expires_at, epoch) VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, partition) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at, epoch = excluded.epoch',
    )
    // A released lease keeps its row (and epoch), so the next acquisition still gets a higher epoch.
    this.dropLease = db.prepare("UPDATE leases SET owner = '', expires_at = 0 WHERE target = ? AND partition = ? AND owner = ?")
    // Never backwards: only an operator's reset may move a committed offset back.
    this.putOffset = db.prepare(
      'INSERT INTO consumer_offsets (target, partition, next_offset) VALUES (?, ?, ?) ON CONFLICT (target, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)',
    )
    this.insertScheduled = db.prepare('INSERT INTO scheduled (target, partition, key, due_at, envelope) VALUES (?, ?, ?, ?, ?)')
    this.updateScheduled = db.prepare('UPDATE scheduled SET due_at = ?, envelope = ? WHERE seq = ? AND target = ?')
    this.deleteScheduled = db.prepare('DELETE FROM scheduled WHERE seq = ? AND target = ?')
    this.insertDead = db.prepare(
      'INSERT INTO dlq (target, partition, id, key, dead_at, error_class, code, message, envelope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    )
    this.insertHistory = db.prepare(
      'INSERT INTO history (mutation_id, target, at, event, attempt, error_class, code, message, delivery) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    )
    // Progress only moves forward.
    this.putTxnProgress = db.prepare(
      'INSERT INTO txn_progress (target, txn, applied_seq, state, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, txn) DO UPDATE SET applied_seq = max(applied_seq, excluded.applied_seq), state = excluded.state, at = excluded.at',
    )
  }

  static open(path: string, namespace: string, partitions: number, target: string, lockTimeoutMs: number): EmbeddedConsumerStore {
    const db = new DatabaseSync(path, { timeout: lockTimeoutMs })
    db.exec('PRAGMA journal_mode = WAL')
    // A consumer commits every 50 ms; an fsync each time stalls its event loop (and with it the
    // requests in flight to a remote target) for milliseconds. NORMAL in WAL mode still survives a
    // crash of the process (kill -9); a power loss may roll back the last commits, offsets and their
    // schedule, DLQ and history changes together — which only means applying those mutations again,
    // as at-least-once delivery with idempotent targets already allows.
    db.exec('PRAGMA synchronous = NORMAL')
    db.exec(CONSUMER_DDL)
    EmbeddedConsumerStore.migrate(db)
    return new EmbeddedConsumerStore(db, namespace, partitions, target, lockTimeoutMs, path)
  }

  /**
   * State written by an older wal: leases had no epoch (added as 0; the next acquisition makes it 1),
   * history no delivery.
   */
  private static migrate(db: DatabaseSync): void {
    const has = (table: string, column: string): boolean => db.prepare('SELECT 1 AS ok FROM pragma_table_info(?) WHERE name = ?').get(table, column) !== undefined
    if (has('leases', 'epoch') && has('history', 'delivery')) return
    db.exec('BEGIN IMMEDIATE')
    try {
      // Another process may have added them meanwhile: look again under the write lock.
      if (!has('leases', 'epoch')) db.exec(ADD_LEASE_EPOCH)
      if (!has('history', 'delivery')) db.exec(ADD_HISTORY_DELIVERY)
      db.exec('COMMIT')
    } catch (error) {
      db.exec('ROLLBACK')
      throw error
    }
  }

  private async transaction<T>(work: () => T): Promise<T> {
    let result!: T
    try {
      // BEGIN, the work and COMMIT run in one go (no await in between), so two transactions of this
      // connection never interleave. Only taking the write lock may wait on another process for long:
      // that wait is capped per try and made of timers; reads (WAL mode) keep the long busy timeout.
      await withLockRetries(() => {
        this.db.exec(`PRAGMA busy_timeout = ${BUSY_WAIT_MS}`)
        try {
          this.db.exec('BEGIN IMMEDIATE')
        } finally {
          this.db.exec(`PRAGMA busy_timeout = ${this.lockTimeoutMs}`)
        }
        try {
          result = work()
          this.db.exec('COMMIT')
        } catch (error) {
          if (this.db.isTransaction) this.db.exec('ROLLBACK')
          throw error
        }
      }, this.lockTimeoutMs)
      return result
    } catch (error) {
      // A full disk, a lock held too long, a file made read-only: the log's fault (exit 5), said as such.
      if (isStorageError(error)) throw unavailable(this.path, `write the consumer state of target "${this.target}" to`, error, undefined, this.lockTimeoutMs)
      throw error
    }
  }

  async claim(owner: string, shard: ShardRequest, ttlMs: number): Promise<ClaimResult> {
    return this.transaction(() => {
      const now = Date.now()
      const shardText = shard === 'auto' ? 'auto' : `${shard.index}/${shard.count}`
      this.db
        .prepare('INSERT INTO consumers (target, owner, shard, heartbeat_at) VALUES (?, ?, ?, ?) ON CONFLICT (target, owner) DO UPDATE SET shard = excluded.shard, heartbeat_at = excluded.heartbeat_at')
        .run(this.target, owner, shardText, now)
      this.db.prepare('DELETE FROM consumers WHERE target = ? AND heartbeat_at < ?').run(this.target, now - 3 * ttlMs)
      let wanted: (p: number) => boolean
      if (shard === 'auto') {
        // Every live auto consumer sees the same sorted list, so their shares never overlap.
        const live = (
          this.db.prepare("SELECT owner FROM consumers WHERE target = ? AND shard = 'auto' AND heartbeat_at >= ? ORDER BY owner").all(this.target, now - ttlMs) as Array<{
            owner: string
          }>
        ).map((r) => r.owner)
        const index = live.indexOf(owner)
        wanted = (p) => p % live.length === index
      } else wanted = (p) => p % shard.count === shard.index
      const owned: number[] = []
      const all: number[] = []
      const epochs = new Map<number, number>()
      for (let p = 0; p < this.partitions; p++) {
        if (!wanted(p)) continue
        all.push(p)
        const lease = this.getLease.get(this.target, p) as LeaseRow | undefined
        if (lease !== undefined && lease.owner === owner && lease.expires_at >= now) {
          // A renewal: same epoch.
          this.putLease.run(this.target, p, owner, now + ttlMs, lease.epoch)
        } else if (lease === undefined || lease.expires_at < now) {
          // An acquisition (also of our own lease after it lapsed: someone may have held it meanwhile).
          this.putLease.run(this.target, p, owner, now + ttlMs, (lease?.epoch ?? 0) + 1)
        } else continue
        owned.push(p)
        epochs.set(p, (this.getLease.get(this.target, p) as unknown as LeaseRow).epoch)
      }
      return { owned, wanted: all, epochs }
    })
  }

  async release(owner: string, partitions?: readonly number[]): Promise<void> {
    await this.transaction(() => {
      if (partitions === undefined) this.db.prepare("UPDATE leases SET owner = '', expires_at = 0 WHERE target = ? AND owner = ?").run(this.target, owner)
      else for (const p of partitions) this.dropLease.run(this.target, p, owner)
      if (partitions === undefined) this.db.prepare('DELETE FROM consumers WHERE target = ? AND owner = ?').run(this.target, owner)
    })
  }

  async committed(partitions: readonly number[]): Promise<Map<number, number>> {
    const rows = this.db
      .prepare('SELECT partition, next_offset FROM consumer_offsets WHERE target = ? AND partition IN (SELECT value FROM json_each(?))')
      .all(this.target, partitionList(partitions)) as Array<{ partition: number; next_offset: number }>
    const found = new Map(rows.map((r) => [r.partition, r.next_offset]))
    const low = this.db.prepare('SELECT offset FROM records WHERE partition = ? ORDER BY offset LIMIT 1')
    return new Map(partitions.map((p) => [p, found.get(p) ?? (low.get(p) as { offset: number } | undefined)?.offset ?? 0]))
  }

  async commit(owner: string, change: ConsumerCommit): Promise<{ lost: number[] }> {
    return this.transaction(() => {
      const lost: number[] = []
      for (const [partition, epoch] of change.epochs) {
        const lease = this.getLease.get(this.target, partition) as LeaseRow | undefined
        if (lease?.owner !== owner || lease.epoch !== epoch) lost.push(partition)
      }
      // An offset without its fencing token is refused like a lost one.
      for (const partition of change.offsets.keys()) if (!change.epochs.has(partition) && !lost.includes(partition)) lost.push(partition)
      if (lost.length > 0) return { lost }
      for (const [partition, offset] of change.offsets) this.putOffset.run(this.target, partition, offset)
      for (const s of change.schedule) this.insertScheduled.run(this.target, s.partition, s.mutation.key, s.dueAtMs, encodeEnvelope(s.mutation))
      for (const s of change.reschedule) this.updateScheduled.run(s.dueAtMs, encodeEnvelope(s.mutation), s.seq, this.target)
      for (const seq of change.unschedule) this.deleteScheduled.run(seq, this.target)
      for (const d of change.deadLetters) {
        this.insertDead.run(this.target, d.partition, d.mutation.id, d.mutation.key, d.atMs, d.errorClass, d.code, d.message, encodeEnvelope(d.mutation))
      }
      for (const t of change.txnProgress ?? []) this.putTxnProgress.run(this.target, t.txn, t.appliedSeq, t.done ? 'applied' : 'applying', Date.now())
      for (const h of change.history) {
        this.insertHistory.run(h.mutationId, this.target, h.atMs, h.event, h.attempt, h.errorClass ?? null, h.code ?? null, h.message ?? null, h.delivery ?? null)
      }
      return { lost }
    })
  }

  async scheduledKeyCounts(partitions: readonly number[]): Promise<Map<string, number>> {
    const rows = this.db
      .prepare('SELECT key, count(*) AS n FROM scheduled WHERE target = ? AND partition IN (SELECT value FROM json_each(?)) GROUP BY key')
      .all(this.target, partitionList(partitions)) as Array<{ key: string; n: number }>
    return new Map(rows.map((r) => [r.key, r.n]))
  }

  async dueScheduled(partitions: readonly number[], nowMs: number, limit: number, skipKeys: ReadonlySet<string>): Promise<ScheduledMutation[]> {
    this.selectDue ??= this.db.prepare(
      `SELECT s.seq, s.partition, s.due_at, s.envelope, s.key FROM scheduled s
       WHERE s.target = ? AND s.due_at <= ? AND s.partition IN (SELECT value FROM json_each(?))
         AND s.seq = (SELECT min(seq) FROM scheduled f WHERE f.target = s.target AND f.key = s.key)
       ORDER BY s.due_at, s.seq LIMIT ?`,
    )
    const rows = this.selectDue
      .all(this.target, nowMs, partitionList(partitions), limit + skipKeys.size) as Array<{
      seq: number
      partition: number
      due_at: number
      envelope: string
      key: string
    }>
    const heads = rows.filter((r) => !skipKeys.has(r.key)).slice(0, limit)
    // Room left: each head's followers that are due too, in order (up to the first that is not, or that
    // is in a partition not asked for), so a key's backlog behind a delay goes as a run, not one per call.
    const followers: typeof rows = []
    if (heads.length < limit) {
      this.selectFollowers ??= this.db.prepare('SELECT seq, partition, due_at, envelope, key FROM scheduled WHERE target = ? AND key = ? AND seq > ? ORDER BY seq LIMIT ?')
      const asked = new Set(partitions)
      for (const head of heads) {
        const room = limit - heads.length - followers.length
        if (room <= 0) break
        for (const r of this.selectFollowers.all(this.target, head.key, head.seq, room) as typeof rows) {
          if (r.due_at > nowMs || !asked.has(r.partition)) break
          followers.push(r)
        }
      }
    }
    return [...heads, ...followers].map((r) => ({
        seq: r.seq,
        partition: r.partition,
        dueAtMs: r.due_at,
        mutation: decodeEnvelopeLine(r.envelope, { namespace: this.namespace, forceNamespace: true, nowMs: Date.now() }),
      }))
  }

  async nextDueAtMs(partitions: readonly number[]): Promise<number | null> {
    const row = this.db
      .prepare(
        `SELECT min(s.due_at) AS due FROM scheduled s WHERE s.target = ? AND s.partition IN (SELECT value FROM json_each(?))
           AND s.seq = (SELECT min(seq) FROM scheduled f WHERE f.target = s.target AND f.key = s.key)`,
      )
      .get(this.target, partitionList(partitions)) as { due: number | null }
    return row.due
  }

  async story(mutationId: string): Promise<{ history: HistoryEvent[]; scheduled: Array<{ dueAtMs: number; attempts: number; delivery?: number }> }> {
    const history = (
      this.db.prepare('SELECT * FROM history WHERE target = ? AND mutation_id = ? ORDER BY rowid').all(this.target, mutationId) as Array<{
        at: number
        event: HistoryEvent['event']
        attempt: number
        error_class: HistoryEvent['errorClass'] | null
        code: string | null
        message: string | null
        delivery: number | null
      }>
    ).map((r) => ({
      mutationId,
      ...(r.delivery === null ? {} : { delivery: r.delivery }),
      atMs: r.at,
      event: r.event,
      attempt: r.attempt,
      ...(r.error_class === null ? {} : { errorClass: r.error_class }),
      ...(r.code === null ? {} : { code: r.code }),
      ...(r.message === null ? {} : { message: r.message }),
    }))
    const scheduled = (this.db.prepare('SELECT due_at, envelope FROM scheduled WHERE target = ? ORDER BY seq').all(this.target) as Array<{ due_at: number; envelope: string }>)
      .map((r) => ({ dueAtMs: r.due_at, envelope: JSON.parse(r.envelope) as { id: string; attempts: number; headers?: Record<string, string> } }))
      .filter((r) => r.envelope.id === mutationId)
      .map((r) => ({ dueAtMs: r.dueAtMs, attempts: r.envelope.attempts, delivery: replaysOf({ headers: r.envelope.headers ?? {} }) }))
    return { history, scheduled }
  }

  async txnProgress(txn: string): Promise<{ appliedSeq: number; state: 'applying' | 'applied' | 'aborted'; atMs: number } | undefined> {
    const row = this.db.prepare('SELECT applied_seq, state, at FROM txn_progress WHERE target = ? AND txn = ?').get(this.target, txn) as
      | { applied_seq: number; state: 'applying' | 'applied' | 'aborted'; at: number }
      | undefined
    return row === undefined ? undefined : { appliedSeq: row.applied_seq, state: row.state, atMs: row.at }
  }

  async abortExpiredTransactions(nowMs: number, timeoutMs: number): Promise<AbortedTxn[]> {
    // Nothing to do (the common case) is found with a read, without taking the write lock.
    const expired = this.db.prepare('SELECT 1 AS ok FROM txns WHERE committed_at IS NULL AND aborted_at IS NULL AND opened_at < ? LIMIT 1')
    const unfiled = this.db.prepare(
      "SELECT t.txn, t.parts, t.opened_at FROM txns t WHERE t.aborted_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM txn_progress g WHERE g.target = ? AND g.txn = t.txn AND g.state = 'aborted') LIMIT 100",
    )
    if (expired.get(nowMs - timeoutMs) === undefined && unfiled.get(this.target) === undefined) return []
    return this.transaction(() => {
      this.db.prepare('UPDATE txns SET aborted_at = ? WHERE committed_at IS NULL AND aborted_at IS NULL AND opened_at < ?').run(nowMs, nowMs - timeoutMs)
      const rows = unfiled.all(this.target) as Array<{ txn: string; parts: number; opened_at: number }>
      return rows.map((row) => {
        const aborted: AbortedTxn = { id: row.txn, partCount: row.parts, openedAtMs: row.opened_at, partition: partitionForKey(row.txn, this.partitions) }
        const dead = abortedTxnEntry(this.namespace, aborted, timeoutMs, nowMs)
        this.putTxnProgress.run(this.target, row.txn, -1, 'aborted', nowMs)
        this.insertDead.run(this.target, aborted.partition, dead.mutation.id, dead.mutation.key, nowMs, dead.errorClass, dead.code, dead.message, encodeEnvelope(dead.mutation))
        return aborted
      })
    })
  }

  async counts(): Promise<{ scheduled: number; deadLetters: number }> {
    const count = (table: string): number => (this.db.prepare(`SELECT count(*) AS n FROM ${table} WHERE target = ?`).get(this.target) as { n: number }).n
    return { scheduled: count('scheduled'), deadLetters: count('dlq') }
  }

  async leases(): Promise<Array<{ partition: number; owner: string; expiresAtMs: number }>> {
    const rows = this.db.prepare("SELECT partition, owner, expires_at FROM leases WHERE target = ? AND owner != '' ORDER BY partition").all(this.target) as Array<{
      partition: number
      owner: string
      expires_at: number
    }>
    return rows.map((r) => ({ partition: r.partition, owner: r.owner, expiresAtMs: r.expires_at }))
  }

  async resetOffsets(offsets: ReadonlyMap<number, number>, options: { force: boolean }): Promise<{ fenced: Array<{ partition: number; owner: string }> }> {
    return this.transaction(() => {
      const now = Date.now()
      const held: Array<{ partition: number; owner: string; epoch: number }> = []
      for (const partition of offsets.keys()) {
        const lease = this.getLease.get(this.target, partition) as LeaseRow | undefined
        if (lease !== undefined && lease.owner !== '' && lease.expires_at >= now) held.push({ partition, owner: lease.owner, epoch: lease.epoch })
      }
      if (held.length > 0 && !options.force) throw leasedError(this.target, held)
      // Fenced: released under a new epoch, so the holder's next commit names a stale one and is refused,
      // and its next claim takes the partition again under a newer epoch, from the new offset.
      for (const h of held) this.putLease.run(this.target, h.partition, '', 0, h.epoch + 1)
      const set = this.db.prepare(
        'INSERT INTO consumer_offsets (target, partition, next_offset) VALUES (?, ?, ?) ON CONFLICT (target, partition) DO UPDATE SET next_offset = excluded.next_offset',
      )
      for (const [partition, offset] of offsets) set.run(this.target, partition, offset)
      return { fenced: held.map(({ partition, owner }) => ({ partition, owner })) }
    })
  }

  async close(): Promise<void> {
    if (this.db.isOpen) this.db.close()
  }
}
