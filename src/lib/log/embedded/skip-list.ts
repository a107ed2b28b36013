/** The embedded log's skip list (`wal skip`), in the namespace's SQLite file beside the consumer state. */
import { DatabaseSync } from 'node:sqlite'

import type { SkipEntry, SkipList } from '../backend.js'
import { CONSUMER_DDL } from './schema.js'

export class EmbeddedSkipList implements SkipList {
  private constructor(private readonly db: DatabaseSync) {}

  static open(path: string, lockTimeoutMs: number): EmbeddedSkipList {
    const db = new DatabaseSync(path, { timeout: lockTimeoutMs })
    db.exec('PRAGMA journal_mode = WAL')
    db.exec('PRAGMA synchronous = FULL')
    db.exec(CONSUMER_DDL)
    return new EmbeddedSkipList(db)
  }

  async entries(): Promise<SkipEntry[]> {
    const rows = this.db.prepare('SELECT id, target, reason, actor, at FROM skips ORDER BY at, id, target').all() as Array<{ id: string; target: string; reason: string | null; actor: string; at: number }>
    return rows.map((r) => ({ id: r.id, target: r.target === '' ? null : r.target, reason: r.reason, actor: r.actor, atMs: r.at }))
  }

  async add(entries: readonly SkipEntry[]): Promise<void> {
    const put = this.db.prepare(
      'INSERT INTO skips (id, target, reason, actor, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id, target) DO UPDATE SET reason = excluded.reason, actor = excluded.actor, at = excluded.at',
    )
    this.db.exec('BEGIN IMMEDIATE')
    try {
      for (const e of entries) put.run(e.id, e.target ?? '', e.reason, e.actor, e.atMs)
      this.db.exec('COMMIT')
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw error
    }
  }

  async remove(ids: readonly string[], target: string | null): Promise<number> {
    const drop = this.db.prepare('DELETE FROM skips WHERE id = ? AND target = ?')
    let removed = 0
    this.db.exec('BEGIN IMMEDIATE')
    try {
      for (const id of ids) removed += Number(drop.run(id, target ?? '').changes)
      this.db.exec('COMMIT')
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw error
    }
    return removed
  }

  async close(): Promise<void> {
    if (this.db.isOpen) this.db.close()
  }
}
