/**
 * Idempotency keys on Kafka. A topic cannot refuse a record, so before appending a mutation that carries
 * an idempotency key, wal looks for the key among the records appended to the same partition in the last
 * IDEMPOTENCY_WINDOW_MS (a mutation's key decides its partition, so a repeat lands where the first did).
 * A repeat found there is acked as a duplicate of the first and not written again: re-producing after
 * an unknown outcome, or resuming a DLQ replay, is safe within the window. The scan is incremental: one
 * process reads each partition's window once, then only what was appended since.
 */
import { HEADER } from './record-codec.js'
import type { KafkaLog } from './kafka-log.js'

/** How far back a repeated idempotency key is recognized. */
export const IDEMPOTENCY_WINDOW_MS = 3_600_000

export interface Appended {
  id: string
  partition: number
  offset: number
}

interface Scanned {
  /** Read up to here (exclusive). */
  upTo: number
  keys: Map<string, Appended>
}

function text(value: unknown): string | undefined {
  const one = Array.isArray(value) ? value.at(-1) : value
  return one === undefined || one === null ? undefined : Buffer.isBuffer(one) ? one.toString('utf8') : String(one)
}

export class IdempotencyIndex {
  private readonly scanned = new Map<number, Scanned>()

  constructor(private readonly log: KafkaLog) {}

  /** For each entry (an idempotency key and its partition), the mutation appended with it before, if any. */
  async lookup(entries: ReadonlyArray<{ key: string; partition: number } | null>): Promise<Array<Appended | undefined>> {
    const partitions = [...new Set(entries.filter((e) => e !== null).map((e) => e.partition))]
    if (partitions.length === 0) return entries.map(() => undefined)
    await this.catchUp(partitions)
    return entries.map((e) => (e === null ? undefined : this.scanned.get(e.partition)!.keys.get(e.key)))
  }

  remember(key: string, appended: Appended): void {
    const scanned = this.scanned.get(appended.partition)
    if (scanned && !scanned.keys.has(key)) scanned.keys.set(key, appended)
  }

  private async catchUp(partitions: number[]): Promise<void> {
    const fresh = partitions.filter((p) => !this.scanned.has(p))
    const windowStart = fresh.length > 0 ? await this.log.offsetsForTime(Date.now() - IDEMPOTENCY_WINDOW_MS) : new Map<number, number>()
    const from = new Map<number, number>()
    for (const p of partitions) from.set(p, this.scanned.get(p)?.upTo ?? windowStart.get(p) ?? 0)
    const marks = await this.log.marks()
    for (const p of partitions) if (!this.scanned.has(p)) this.scanned.set(p, { upTo: from.get(p)!, keys: new Map() })
    for await (const { partition, offset, record } of this.log.connection.snapshot(this.log.topics.log, { partitions, from })) {
      const key = text(record.headers?.[HEADER.idempotencyKey])
      const scanned = this.scanned.get(partition)!
      if (key !== undefined && !scanned.keys.has(key)) scanned.keys.set(key, { id: text(record.headers?.[HEADER.id]) ?? '', partition, offset })
    }
    for (const p of partitions) {
      const scanned = this.scanned.get(p)!
      scanned.upTo = Math.max(scanned.upTo, marks[p]!.high)
    }
  }
}
