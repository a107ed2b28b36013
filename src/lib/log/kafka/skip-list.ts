/**
 * The skip list of a Kafka namespace (`wal skip`): entries in the namespace's compacted state topic,
 * keyed `skip:ID:TARGET` (TARGET empty: every target), so any consumer on any machine reads the same
 * list. Un-skipping writes the key again as removed (compaction keeps the latest value per key).
 */
import type { SkipEntry, SkipList } from '../backend.js'
import type { KafkaLog } from './kafka-log.js'

const PREFIX = 'skip:'
/** A mutation id is a 26-character ULID: what follows it (after a colon) is the target. */
const ID_CHARS = 26

export class KafkaSkipList implements SkipList {
  constructor(private readonly log: KafkaLog) {}

  async entries(): Promise<SkipEntry[]> {
    const latest = new Map<string, string | null>()
    try {
      for await (const { record } of this.log.connection.snapshot(this.log.topics.state)) {
        const key = record.key?.toString('utf8')
        if (key?.startsWith(PREFIX)) latest.set(key, record.value === null ? null : record.value.toString('utf8'))
      }
    } catch (error) {
      throw this.log.connection.error(error)
    }
    const out: SkipEntry[] = []
    for (const [key, value] of latest) {
      if (value === null) continue
      const entry = JSON.parse(value) as Partial<SkipEntry> & { removed?: boolean }
      if (entry.removed) continue
      const rest = key.slice(PREFIX.length)
      const target = rest.slice(ID_CHARS + 1)
      out.push({ id: rest.slice(0, ID_CHARS), target: target === '' ? null : target, reason: entry.reason ?? null, actor: entry.actor ?? 'unknown', atMs: entry.atMs ?? 0 })
    }
    return out.sort((a, b) => a.atMs - b.atMs)
  }

  private async write(records: ReadonlyArray<{ id: string; target: string | null; value: object; atMs: number }>): Promise<void> {
    if (records.length === 0) return
    await this.log.connection.send([
      {
        topic: this.log.topics.state,
        messages: records.map((r) => ({ key: `${PREFIX}${r.id}:${r.target ?? ''}`, value: JSON.stringify(r.value), headers: {}, timestamp: String(r.atMs) })),
      },
    ])
  }

  async add(entries: readonly SkipEntry[]): Promise<void> {
    await this.write(entries.map((e) => ({ id: e.id, target: e.target, atMs: e.atMs, value: { reason: e.reason, actor: e.actor, atMs: e.atMs } })))
  }

  async remove(ids: readonly string[], target: string | null): Promise<number> {
    const present = (await this.entries()).filter((e) => e.target === target && ids.includes(e.id))
    const atMs = Date.now()
    await this.write(present.map((e) => ({ id: e.id, target, atMs, value: { removed: true, atMs } })))
    return present.length
  }

  async close(): Promise<void> {}
}
