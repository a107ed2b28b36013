/**
 * Sending many records to Kafka in requests the brokers take. A produce request carries one record batch
 * per partition, and a broker takes or refuses a batch whole, against the topic's max.message.bytes
 * (1 MiB by default): a group commit of thousands of records, or a round of a Kafka target, is split into
 * requests that stay under it, sent one after another so order holds. When the brokers refuse a request
 * for a record's fault (too large, invalid), the request is split in halves until the record at fault is
 * alone: it alone fails, and its neighbours are written. Records are first measured against the topic's
 * max.message.bytes, so that refusal is rare: a request with several partitions may have been written in
 * part when the brokers refuse one of them, and halving it then writes that part again (at least once).
 */

/** Bytes of records for one partition in one request, at most: half the brokers' default limit. */
export const MAX_PARTITION_BATCH_BYTES = 512 * 1024
/** A topic's max.message.bytes when it cannot be read (Kafka's default). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
/** A record batch's own framing, besides its records. */
export const BATCH_OVERHEAD_BYTES = 61

/**
 * The bytes a partition's records may take in one request under a topic's max.message.bytes. A record
 * that alone exceeds it is refused before it is sent (see recordBytes: an estimate on the large side).
 */
export function batchBudget(maxMessageBytes: number): number {
  return Math.max(1, Math.min(MAX_PARTITION_BATCH_BYTES, maxMessageBytes - BATCH_OVERHEAD_BYTES))
}

/** A topic's max.message.bytes, read with an admin client; the default when it cannot be read. */
export async function maxMessageBytes(admin: import('kafkajs').Admin, topic: string): Promise<number> {
  try {
    const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2 /* TOPIC */, name: topic, configNames: ['max.message.bytes'] }] })
    const value = Number(resources[0]?.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue)
    return Number.isInteger(value) && value > 0 ? value : DEFAULT_MAX_MESSAGE_BYTES
  } catch {
    // Not allowed to describe configs (ACLs), or not answered: the brokers still say so if it is lower.
    return DEFAULT_MAX_MESSAGE_BYTES
  }
}

/** What one record costs in a batch, near enough: key, value, headers, and a record's framing. */
export function recordBytes(record: { key?: string | Buffer | null; value: string | Buffer | null; headers?: Record<string, string> }): number {
  let n = 70
  if (record.key) n += Buffer.byteLength(record.key)
  if (record.value !== null) n += Buffer.byteLength(record.value)
  for (const name in record.headers) n += Buffer.byteLength(name) + Buffer.byteLength(record.headers[name]!) + 4
  return n
}

/** Consecutive chunks of items in which each partition (as `partitionOf` names it) gets at most `maxBytes`. */
export function chunkByPartitionBytes<T>(items: readonly T[], options: { bytes: (item: T) => number; partitionOf: (item: T) => string; maxBytes?: number }): T[][] {
  const maxBytes = options.maxBytes ?? MAX_PARTITION_BATCH_BYTES
  const chunks: T[][] = []
  let chunk: T[] = []
  let used = new Map<string, number>()
  for (const item of items) {
    const partition = options.partitionOf(item)
    const size = options.bytes(item)
    const had = used.get(partition) ?? 0
    if (had > 0 && had + size > maxBytes) {
      chunks.push(chunk)
      chunk = []
      used = new Map()
    }
    chunk.push(item)
    used.set(partition, (used.get(partition) ?? 0) + size)
  }
  if (chunk.length > 0) chunks.push(chunk)
  return chunks
}

/** Per item: what its send answered, or why it was not written. */
export type ChunkOutcome<R> = { ok: R } | { error: unknown }

/**
 * Sends chunks in order. A chunk refused for a record's fault (`isRecordFault`) is halved until that
 * record is alone, which alone fails. Any other failure fails its chunk and every later one (their outcome
 * is the caller's to word: an outage, or unknown).
 */
export async function sendChunks<T, R>(chunks: readonly T[][], send: (chunk: T[]) => Promise<R[]>, isRecordFault: (error: unknown) => boolean): Promise<Array<ChunkOutcome<R>>> {
  const out: Array<ChunkOutcome<R>> = []
  let stopped: unknown
  let hasStopped = false
  const sendOne = async (chunk: T[]): Promise<void> => {
    if (hasStopped) {
      for (let i = 0; i < chunk.length; i++) out.push({ error: stopped })
      return
    }
    try {
      const results = await send(chunk)
      for (const ok of results) out.push({ ok })
    } catch (error) {
      if (isRecordFault(error)) {
        if (chunk.length === 1) {
          out.push({ error })
          return
        }
        const half = Math.ceil(chunk.length / 2)
        await sendOne(chunk.slice(0, half))
        await sendOne(chunk.slice(half))
        return
      }
      stopped = error
      hasStopped = true
      for (let i = 0; i < chunk.length; i++) out.push({ error })
    }
  }
  for (const chunk of chunks) await sendOne(chunk)
  return out
}
