/**
 * One connection to the cluster of a Kafka namespace, shared by its log, consumer state and DLQ: an admin
 * client, a group-less partition reader and an idempotent producer (acks from all in-sync replicas), each
 * made on first use. kafkajs errors are converted here, where it is called.
 */
import type { KafkaLogSettings } from '../../config/schema.js'
import { DurabilityUnknownError, WalError } from '../../errors.js'
import { describeKafkaError, kafkaClientConfig, kafkaFault, loadKafkajs, recordTooLarge, riding, rootKafkaError, type KafkaModule } from '../../kafka/client.js'
import { BATCH_OVERHEAD_BYTES, batchBudget, chunkByPartitionBytes, maxMessageBytes, recordBytes, sendChunks } from '../../kafka/record-batches.js'
import { PartitionReader } from '../../kafka/partition-reader.js'
import type { PartitionMark } from '../backend.js'
import type { IncomingRecord, OutgoingRecord } from './record-codec.js'
import { compressionType } from '../../kafka/compression.js'

export interface TopicMessages {
  topic: string
  messages: OutgoingRecord[]
}

/** Where a record was written (offset -1 where the partition was the producer's pick among several), or why not. */
export type RecordOutcome = { partition: number; offset: number; error?: undefined } | { error: WalError }

const partitionIds = new Map<string, Map<number | string, string>>()

/** `topic NUL partition`, one string per partition made once: not a new string to build and hash per record. */
function partitionId(topic: string, partition: number | string): string {
  let ids = partitionIds.get(topic)
  if (ids === undefined) partitionIds.set(topic, (ids = new Map()))
  let id = ids.get(partition)
  if (id === undefined) ids.set(partition, (id = `${topic}\u0000${partition}`))
  return id
}

export class KafkaConnection {
  private reader_: Promise<PartitionReader> | undefined
  private producer_: Promise<import('kafkajs').Producer> | undefined

  private constructor(
    readonly settings: KafkaLogSettings,
    readonly kafkajs: KafkaModule,
    readonly kafka: import('kafkajs').Kafka,
    readonly admin: import('kafkajs').Admin,
  ) {}

  static async open(settings: KafkaLogSettings): Promise<KafkaConnection> {
    const kafkajs = await loadKafkajs()
    const kafka = new kafkajs.Kafka(kafkaClientConfig(settings.cluster, kafkajs))
    const admin = kafka.admin()
    try {
      await admin.connect()
    } catch (error) {
      throw describeKafkaError(settings.cluster, error)
    }
    return new KafkaConnection(settings, kafkajs, kafka, admin)
  }

  /** An admin call, with transient broker states (no leader yet, coordinator loading) waited out. */
  async adminCall<T>(call: (admin: import('kafkajs').Admin) => Promise<T>): Promise<T> {
    try {
      return await riding(() => call(this.admin))
    } catch (error) {
      throw this.error(error)
    }
  }

  /** Converts a kafkajs error into wal's. */
  error(error: unknown): WalError {
    return describeKafkaError(this.settings.cluster, error)
  }

  reader(): Promise<PartitionReader> {
    this.reader_ ??= PartitionReader.open(this.kafka).catch((error: unknown) => {
      this.reader_ = undefined
      throw this.error(error)
    })
    return this.reader_
  }

  producer(): Promise<import('kafkajs').Producer> {
    this.producer_ ??= (async () => {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        // Bounded: a broker that stays away must end in "outcome unknown", not a hang.
        retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 5000 },
      })
      await producer.connect()
      return producer
    })().catch((error: unknown) => {
      this.producer_ = undefined
      throw this.error(error)
    })
    return this.producer_
  }

  /**
   * Sends records and waits for all in-sync replicas, in requests the brokers take (see
   * record-batches.ts), one after another. Answers per topic entry and record: where it was written, or
   * why not — an InvalidRecordError for a record the brokers refused (its neighbours are written), a
   * DurabilityUnknownError once a request may have reached the brokers without an answer (that record
   * and those after it may or may not be in the log).
   */
  async sendRecords(batch: readonly TopicMessages[], via?: Pick<import('kafkajs').Transaction, 'sendBatch'>): Promise<RecordOutcome[][]> {
    const out: RecordOutcome[][] = batch.map((entry) => new Array<RecordOutcome>(entry.messages.length))
    const limits = new Map<string, number>()
    for (const { topic } of batch) if (!limits.has(topic)) limits.set(topic, await this.maxMessageBytes(topic))
    const items: Array<{ t: number; m: number; topic: string; record: OutgoingRecord; bytes: number }> = []
    batch.forEach((entry, t) =>
      entry.messages.forEach((record, m) => {
        const bytes = recordBytes(record)
        const limit = limits.get(entry.topic)!
        if (bytes + BATCH_OVERHEAD_BYTES > limit) out[t]![m] = { error: recordTooLarge(this.settings.cluster, entry.topic, bytes, limit) }
        else items.push({ t, m, topic: entry.topic, record, bytes })
      }),
    )
    const budget = Math.min(...[...limits.values()].map(batchBudget))
    const chunks = chunkByPartitionBytes(items, { bytes: (i) => i.bytes, partitionOf: (i) => partitionId(i.topic, i.record.partition ?? '*'), maxBytes: budget })
    const outcomes = await sendChunks(chunks, (chunk) => this.sendChunk(chunk, via), (error) => kafkaFault(error) === 'record')
    items.forEach((item, i) => {
      const outcome = outcomes[i]!
      out[item.t]![item.m] = 'ok' in outcome ? outcome.ok : { error: this.sendError(outcome.error, item.topic) }
    })
    return out
  }

  private readonly limits = new Map<string, Promise<number>>()

  /** A topic's max.message.bytes, read once per connection. */
  maxMessageBytes(topic: string): Promise<number> {
    let limit = this.limits.get(topic)
    if (!limit) {
      limit = maxMessageBytes(this.admin, topic)
      this.limits.set(topic, limit)
    }
    return limit
  }

  /** sendRecords for callers that need all or nothing: throws the first failure. */
  async send(batch: readonly TopicMessages[]): Promise<void> {
    for (const entry of await this.sendRecords(batch)) {
      for (const outcome of entry) if (outcome.error) throw outcome.error
    }
  }

  private sendError(error: unknown, topic: string): WalError {
    if (error instanceof WalError) return error
    const root = rootKafkaError(error)
    if (kafkaFault(error) === 'record') return describeKafkaError(this.settings.cluster, error, { topic })
    if (root.retriable === false && root.name === 'KafkaJSProtocolError') return this.error(error)
    return new DurabilityUnknownError(`Kafka cluster "${this.settings.cluster.name}": ${root.message}: the outcome of the write is unknown`, {
      cause: error,
      suggestions: ['produce the same mutations again with their idempotency keys: the duplicates are recognized', 'check the brokers (`wal ns show` reports what it can reach)'],
    })
  }

  /**
   * One request (through `via`, a Kafka transaction, when given). Offsets follow each partition's base
   * offset, in the order records were given.
   */
  private async sendChunk(chunk: ReadonlyArray<{ topic: string; record: OutgoingRecord }>, via?: Pick<import('kafkajs').Transaction, 'sendBatch'>): Promise<RecordOutcome[]> {
    const producer = via ?? (await this.producer())
    const byTopic = new Map<string, OutgoingRecord[]>()
    for (const { topic, record } of chunk) {
      const list = byTopic.get(topic)
      if (list) list.push(record)
      else byTopic.set(topic, [record])
    }
    const timeoutMs = this.settings.cluster.deliveryTimeoutMs
    let timer: NodeJS.Timeout | undefined
    let metadata: import('kafkajs').RecordMetadata[]
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the brokers within ${timeoutMs / 1000} s (deliveryTimeoutMs)`)), timeoutMs)
      })
      metadata = await Promise.race([producer.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), acks: -1, timeout: timeoutMs, compression: compressionType(this.kafkajs, this.settings.compression) }), timeout])
    } catch (error) {
      // The producer's sequence numbers no longer match what the brokers hold (a request may have been
      // written for some partitions and refused for one): start a new producer next time.
      if (via === undefined) {
        this.producer_ = undefined
        void (producer as import('kafkajs').Producer).disconnect().catch(() => undefined)
      }
      throw error
    } finally {
      clearTimeout(timer)
    }
    const next = new Map(metadata.map((r) => [partitionId(r.topicName, r.partition), Number(r.baseOffset ?? r.offset)]))
    const only = new Map<string, number>()
    for (const [topic] of byTopic) {
      const own = metadata.filter((r) => r.topicName === topic)
      if (own.length === 1) only.set(topic, own[0]!.partition)
    }
    return chunk.map(({ topic, record }) => {
      const partition = record.partition ?? only.get(topic)
      if (partition === undefined) return { partition: -1, offset: -1 }
      const id = partitionId(topic, partition)
      const offset = next.get(id)
      if (offset === undefined) return { partition, offset: -1 }
      next.set(id, offset + 1)
      return { partition, offset }
    })
  }

  /** Low and high offsets of every partition of a topic. */
  async marks(topic: string): Promise<PartitionMark[]> {
    try {
      const offsets = await riding(() => this.admin.fetchTopicOffsets(topic))
      return offsets.map((o) => ({ partition: o.partition, low: Number(o.low), high: Number(o.high) })).sort((a, b) => a.partition - b.partition)
    } catch (error) {
      throw this.error(error)
    }
  }

  /** Partition count of a topic, or null when it does not exist. */
  async partitionCount(topic: string): Promise<number | null> {
    try {
      const { topics } = await riding(() => this.admin.fetchTopicMetadata({ topics: [topic] }))
      return topics[0]?.partitions.length ?? null
    } catch (error) {
      if (rootKafkaError(error).type === 'UNKNOWN_TOPIC_OR_PARTITION') return null
      throw this.error(error)
    }
  }

  /**
   * Every record of a topic from `from` (default: the low mark) up to the high mark as it is now, per
   * partition in offset order. `onBlocked` is told when a partition's records stop short of it at a Kafka
   * transaction still open (read_committed readers see nothing past it until it ends).
   */
  async *snapshot(
    topic: string,
    options: { partitions?: readonly number[]; from?: ReadonlyMap<number, number>; onBlocked?: (partition: number) => void } = {},
  ): AsyncIterable<{ partition: number; offset: number; record: IncomingRecord }> {
    const marks = await this.marks(topic)
    const positions = new Map<number, number>()
    const until = new Map<number, number>()
    for (const m of marks) {
      if (options.partitions && !options.partitions.includes(m.partition)) continue
      const from = Math.max(m.low, options.from?.get(m.partition) ?? m.low)
      if (from < m.high) {
        positions.set(m.partition, from)
        until.set(m.partition, m.high)
      }
    }
    const reader = await this.reader()
    while (positions.size > 0) {
      let fetched
      try {
        fetched = await reader.fetch(topic, positions, { maxWaitMs: 100, maxBytesPerPartition: 4 * 1024 * 1024 })
      } catch (error) {
        throw this.error(error)
      }
      for (const f of fetched) {
        const end = until.get(f.partition)!
        for (const record of f.records) {
          const offset = Number(record.offset)
          if (offset >= end) break
          yield { partition: f.partition, offset, record }
        }
        // Done when past the snapshot's end, or when nothing is left to read below it (a gap at the end, or
        // records of a Kafka transaction still open: not readable yet).
        if (f.nextOffset >= end || (f.records.length === 0 && f.stableOffset <= positions.get(f.partition)!)) {
          if (f.nextOffset < end && f.stableOffset < end) options.onBlocked?.(f.partition)
          positions.delete(f.partition)
        } else positions.set(f.partition, f.nextOffset)
      }
    }
  }

  async close(): Promise<void> {
    const producer = this.producer_
    const reader = this.reader_
    this.producer_ = undefined
    this.reader_ = undefined
    await Promise.all([
      producer?.then((p) => p.disconnect()).catch(() => undefined),
      reader?.then((r) => r.close()).catch(() => undefined),
      this.admin.disconnect().catch(() => undefined),
    ])
  }
}
