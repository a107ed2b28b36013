/**
 * Payloads larger than a backend's record limit (Kafka's max.message.bytes): written as ordered chunks
 * of one partition, every chunk a record with the mutation's key, id and headers plus
 *   wal-chunk        "i/N" (0-based)
 *   wal-chunk-sha256 the SHA-256 (hex) of the whole stored value
 * and reassembled by the log's reader before anyone sees them (tail, consume, explain, dlq), so readers
 * get one record, at the position of its last chunk. Chunks that do not add up — one missing (deleted,
 * lost to retention), out of order, or a checksum that does not match — come back as one poison record
 * (never applied; dead-lettered as class `poison`).
 */
import { createHash } from 'node:crypto'

import { checkedJson } from '../envelope/quarantine.js'
import { poisonRecord } from '../envelope/quarantine.js'
import type { LogRecord } from '../envelope/envelope.js'

export const CHUNK_HEADER = 'wal-chunk'
export const CHUNK_SHA_HEADER = 'wal-chunk-sha256'
/** Set by the reader on a chunk: how the whole value is encoded ("json" or "base64"). */
export const CHUNK_ENCODING_HEADER = 'wal-chunk-encoding'

/** The value cut into chunks of at most `chunkBytes`, with the headers each chunk carries (in order). */
export function chunkValue(value: Buffer, chunkBytes: number): Array<{ value: Buffer; headers: Record<string, string> }> {
  const count = Math.ceil(value.length / chunkBytes)
  const sha = createHash('sha256').update(value).digest('hex')
  return Array.from({ length: count }, (_, i) => ({
    value: value.subarray(i * chunkBytes, Math.min(value.length, (i + 1) * chunkBytes)),
    headers: { [CHUNK_HEADER]: `${i}/${count}`, [CHUNK_SHA_HEADER]: sha },
  }))
}

/** Which chunk a record is, when it is one. */
function chunkOf(record: LogRecord): { index: number; count: number; sha: string } | undefined {
  const text = record.headers[CHUNK_HEADER]
  if (text === undefined) return undefined
  const match = /^(\d{1,9})\/(\d{1,9})$/.exec(text)
  const index = match ? Number(match[1]) : -1
  const count = match ? Number(match[2]) : -1
  return { index, count, sha: record.headers[CHUNK_SHA_HEADER] ?? '' }
}

interface Group {
  id: string
  chunks: LogRecord[]
  count: number
  sha: string
  /** The chunk expected next. */
  next: number
  /** Why the group cannot be put together (a chunk missing). */
  why?: string
}

/**
 * Puts chunks back together, per partition, as records are read in offset order. `push` returns what
 * to hand on now: ordinary records as they are, a whole payload once its last chunk is read, a poison
 * record for chunks that do not add up. A group still incomplete when the reading stops is not handed
 * on: its first chunk's offset was never passed, so the next read starts there again.
 */
export class Reassembler {
  private readonly open = new Map<number, Group>()

  constructor(private readonly where: string) {}

  push(record: LogRecord): LogRecord[] {
    const chunk = record.poison ? undefined : chunkOf(record)
    const out: LogRecord[] = []
    let group = this.open.get(record.partition)
    if (group !== undefined && (chunk === undefined || record.id !== group.id || chunk.count !== group.count || chunk.index < group.next)) {
      // Cut short: what the group had is poison, and this record is read on its own.
      this.open.delete(record.partition)
      out.push(this.broken(group, group.why ?? `chunk ${group.next} of ${group.count} is missing (the next record, at ${record.partition}:${record.offset}, is not it)`))
      group = undefined
    }
    if (chunk === undefined) {
      out.push(record)
      return out
    }
    if (group === undefined) {
      group = { id: record.id, chunks: [], count: chunk.count, sha: chunk.sha, next: 0 }
      this.open.set(record.partition, group)
    }
    if (chunk.index !== group.next) group.why ??= `chunk ${group.next} of ${group.count} is missing (deleted, or lost to retention)`
    group.chunks.push(record)
    group.next = chunk.index + 1
    if (group.next >= group.count) {
      this.open.delete(record.partition)
      out.push(group.why === undefined ? this.whole(group) : this.broken(group, group.why))
    }
    return out
  }

  private whole(group: Group): LogRecord {
    const last = group.chunks.at(-1)!
    const value = Buffer.concat(group.chunks.map((c) => (c.payload.encoding === 'base64' ? c.payload.bytes : Buffer.from(c.payload.json))))
    if (createHash('sha256').update(value).digest('hex') !== group.sha) return this.broken(group, 'the SHA-256 of its chunks put together does not match the one they carry (a chunk is damaged)')
    const headers = Object.create(null) as Record<string, string>
    for (const name of Object.keys(last.headers)) if (name !== CHUNK_HEADER && name !== CHUNK_SHA_HEADER && name !== CHUNK_ENCODING_HEADER) headers[name] = last.headers[name]!
    try {
      const payload = last.headers[CHUNK_ENCODING_HEADER] === 'base64' ? { encoding: 'base64' as const, bytes: value } : { encoding: 'json' as const, json: checkedJson(new TextDecoder('utf-8', { fatal: true }).decode(value)) }
      return { ...last, headers, payload }
    } catch (error) {
      return this.broken(group, (error as Error).message)
    }
  }

  private broken(group: Group, why: string): LogRecord {
    const last = group.chunks.at(-1)!
    return poisonRecord({
      id: group.id,
      key: last.key,
      namespace: last.namespace,
      partition: last.partition,
      // At its last chunk read: a consumer commits past every chunk it had.
      offset: last.offset,
      appendedAtMs: last.appendedAtMs,
      location: this.where,
      raw: Buffer.from(JSON.stringify({ chunks: group.chunks.map((c) => `${c.partition}:${c.offset}`), of: group.count })),
      error: `the payload of ${group.id} in ${this.where} was written in ${group.count} chunks, and they do not add up: ${why}`,
    })
  }
}

/** Reads records through a Reassembler. */
export async function* reassembled(records: AsyncIterable<LogRecord>, where: string): AsyncIterable<LogRecord> {
  const reassembler = new Reassembler(where)
  for await (const record of records) yield* reassembler.push(record)
}
