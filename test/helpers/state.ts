/** Reads wal's state files directly, to check what commands did (the files are wal's own format). */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'

function query<T>(path: string, sql: string, ...params: Array<string | number>): T[] {
  if (!existsSync(path)) return []
  // A busy timeout: tests poll these files while wal writes them.
  const db = new DatabaseSync(path, { readOnly: true, timeout: 5000 })
  try {
    return db.prepare(sql).all(...params) as T[]
  } catch (error) {
    // The file exists a moment before wal has created its tables: nothing written yet.
    if (error instanceof Error && error.message.startsWith('no such table')) return []
    throw error
  } finally {
    db.close()
  }
}

export interface KvRow {
  tbl: string
  pk: string
  item: string | null
  deleted: number
  written_at: number
  mutation_id: string
}

export const kvItems = (stateDir: string, namespace = 'default'): KvRow[] =>
  query<KvRow>(join(stateDir, 'kv', `${namespace}.db`), 'SELECT * FROM items ORDER BY tbl, pk')

export const deadLetters = (stateDir: string, namespace = 'default'): Array<{ target: string; key: string; id: string; error_class: string; code: string; envelope: string }> =>
  query(join(stateDir, 'embedded', `${namespace}.db`), 'SELECT * FROM dlq ORDER BY seq')

export const scheduled = (stateDir: string, namespace = 'default'): Array<{ target: string; key: string; due_at: number; envelope: string }> =>
  query(join(stateDir, 'embedded', `${namespace}.db`), 'SELECT * FROM scheduled ORDER BY seq')

export const history = (stateDir: string, namespace = 'default'): Array<{ mutation_id: string; target: string; event: string; attempt: number; at: number; code: string | null }> =>
  query(join(stateDir, 'embedded', `${namespace}.db`), 'SELECT * FROM history ORDER BY rowid')

/** Committed next offsets per target and partition. */
export const committedOffsets = (stateDir: string, namespace = 'default'): Array<{ target: string; partition: number; next_offset: number }> =>
  query(join(stateDir, 'embedded', `${namespace}.db`), 'SELECT target, partition, next_offset FROM consumer_offsets ORDER BY target, partition')

/** The next offset to be written, per partition of the log. */
export const highMarks = (stateDir: string, namespace = 'default'): Map<number, number> =>
  new Map(
    query<{ partition: number; next_offset: number }>(join(stateDir, 'embedded', `${namespace}.db`), 'SELECT partition, next_offset FROM partitions').map((r) => [
      r.partition,
      r.next_offset,
    ]),
  )

/** Partition leases (owner '' once released). */
export const leaseRows = (stateDir: string, namespace = 'default'): Array<{ target: string; partition: number; owner: string; expires_at: number; epoch: number }> =>
  query(join(stateDir, 'embedded', `${namespace}.db`), 'SELECT * FROM leases ORDER BY target, partition')
