/** The embedded log's DLQ, in the namespace's SQLite file beside the records it came from. */
import { DatabaseSync } from 'node:sqlite'

import { decodeEnvelopeLine, type ErrorClass } from '../../envelope/envelope.js'
import type { AuditRecord, DeadLetterQueue, DlqEntry, DlqQuery } from '../backend.js'
import { CONSUMER_DDL } from './schema.js'

interface Row {
  seq: number
  target: string
  partition: number
  dead_at: number
  error_class: ErrorClass
  code: string
  message: string
  envelope: string
  parked: number
}

export class EmbeddedDeadLetterQueue implements DeadLetterQueue {
  private constructor(
    private readonly db: DatabaseSync,
    private readonly namespace: string,
  ) {}

  static open(path: string, namespace: string, lockTimeoutMs: number): EmbeddedDeadLetterQueue {
    const db = new DatabaseSync(path, { timeout: lockTimeoutMs })
    db.exec('PRAGMA journal_mode = WAL')
    db.exec('PRAGMA synchronous = FULL')
    db.exec(CONSUMER_DDL)
    return new EmbeddedDeadLetterQueue(db, namespace)
  }

  async entries(query: DlqQuery): Promise<DlqEntry[]> {
    const where: string[] = ['seq > ?']
    const params: Array<string | number> = [query.afterSeq ?? 0]
    const add = (clause: string, value: string | number | undefined): void => {
      if (value === undefined) return
      where.push(clause)
      params.push(value)
    }
    add('target = ?', query.target)
    add('error_class = ?', query.errorClass)
    add('key = ?', query.key)
    add('id = ?', query.id)
    add('dead_at >= ?', query.sinceMs)
    add('dead_at < ?', query.untilMs)
    const limit = query.limit === undefined ? '' : ` LIMIT ${Math.max(0, Math.floor(query.limit))}`
    const rows = this.db.prepare(`SELECT * FROM dlq WHERE ${where.join(' AND ')} ORDER BY seq${limit}`).all(...params) as unknown as Row[]
    return rows.map((r) => ({
      seq: r.seq,
      target: r.target,
      partition: r.partition,
      mutation: decodeEnvelopeLine(r.envelope, { namespace: this.namespace, forceNamespace: true, nowMs: Date.now() }),
      errorClass: r.error_class,
      code: r.code,
      message: r.message,
      deadAtMs: r.dead_at,
      parked: r.parked === 1,
    }))
  }

  private each(sql: string, seqs: readonly number[]): number {
    if (seqs.length === 0) return 0
    const statement = this.db.prepare(sql)
    let changed = 0
    this.db.exec('BEGIN IMMEDIATE')
    try {
      for (const seq of seqs) changed += Number(statement.run(seq).changes)
      this.db.exec('COMMIT')
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw error
    }
    return changed
  }

  async remove(seqs: readonly number[]): Promise<number> {
    return this.each('DELETE FROM dlq WHERE seq = ?', seqs)
  }

  async park(seqs: readonly number[]): Promise<void> {
    this.each('UPDATE dlq SET parked = 1 WHERE seq = ?', seqs)
  }

  async recordAudit(record: AuditRecord): Promise<void> {
    this.db.prepare('INSERT INTO audit (at, actor, action, details) VALUES (?, ?, ?, ?)').run(record.atMs, record.actor, record.action, JSON.stringify(record.details))
  }

  async audit(limit: number): Promise<AuditRecord[]> {
    const rows = this.db.prepare('SELECT * FROM (SELECT * FROM audit ORDER BY seq DESC LIMIT ?) ORDER BY seq').all(limit) as Array<{
      at: number
      actor: string
      action: string
      details: string
    }>
    return rows.map((r) => ({ atMs: r.at, actor: r.actor, action: r.action, details: JSON.parse(r.details) as Record<string, unknown> }))
  }

  async close(): Promise<void> {
    if (this.db.isOpen) this.db.close()
  }
}
