/**
 * Reads partitions of a topic from given offsets, with no consumer group: what `tail`, the DLQ commands
 * and the consumer pipeline need (they keep their own positions). kafkajs only reads through a group,
 * whose join costs seconds and whose offsets we do not want, so this uses its cluster and fetch
 * request directly — the same calls its consumer makes — in read_committed mode (aborted transactions
 * and control records are skipped, and their offsets stepped over).
 */
import { createRequire } from 'node:module'

import type { IncomingRecord } from '../log/kafka/record-codec.js'
import { kafkaFault, TRANSIENT_WAIT_MS } from './client.js'

interface KafkaCluster {
  connect(): Promise<void>
  disconnect(): Promise<void>
  addTargetTopic(topic: string): Promise<void>
  refreshMetadata(): Promise<void>
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>
  findBroker(options: { nodeId: string }): Promise<{
    connectionPool?: { getConnection(index: number): Promise<unknown> }
    fetch(request: {
      replicaId?: number
      isolationLevel: number
      maxWaitTime: number
      minBytes: number
      maxBytes: number
      topics: Array<{ topic: string; partitions: Array<{ partition: number; fetchOffset: string; maxBytes: number }> }>
    }): Promise<{ responses: Array<{ topicName: string; partitions: Array<RawPartitionData> }> }>
  }>
}

interface RawPartitionData {
  partition: number
  errorCode: number
  highWatermark: string
  logStartOffset?: string
  abortedTransactions?: unknown[]
  messages: unknown[]
}

interface KafkaBatch {
  partition: number
  highWatermark: string
  messages: IncomingRecord[]
  isEmptyIncludingFiltered(): boolean
  lastOffset(): string
}

type BatchClass = new (topic: string, fetchedOffset: string, partitionData: RawPartitionData) => KafkaBatch

const READ_COMMITTED = 1
const CREATE_CLUSTER = 'private:Kafka:createCluster'

/** What one fetch returned for a partition. */
export interface FetchedPartition {
  partition: number
  records: IncomingRecord[]
  /** Where the next fetch of this partition starts (past skipped control records and gaps). */
  nextOffset: number
  highWatermark: number
  /**
   * The last stable offset: below it every transaction is decided. A read_committed fetch returns
   * nothing at or past it, so a reader there has read all it can now (the rest waits on an open Kafka
   * transaction, committed or aborted later).
   */
  stableOffset: number
}

export interface FetchOptions {
  /** How long the broker may wait for data when there is none yet. */
  maxWaitMs: number
  maxBytesPerPartition?: number
}

export class PartitionReader {
  private constructor(
    private readonly cluster: KafkaCluster,
    private readonly Batch: BatchClass,
  ) {}

  private readonly topics = new Map<string, Promise<void>>()
  /** Brokers whose fetch connection is open (see fetchBroker). */
  private readonly fetchConnections = new Map<string, Promise<void>>()

  /** A reader on a client made by `new Kafka(...)`. */
  static async open(kafka: import('kafkajs').Kafka): Promise<PartitionReader> {
    const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER)
    if (symbol === undefined) throw new Error('this kafkajs version has no cluster factory; wal needs kafkajs 2.x')
    const create = (kafka as unknown as Record<symbol, (options: object) => KafkaCluster>)[symbol]!
    const cluster = create({ metadataMaxAge: 300_000, allowAutoTopicCreation: false, isolationLevel: READ_COMMITTED })
    const require = createRequire(import.meta.url)
    const Batch = require('kafkajs/src/consumer/batch.js') as BatchClass
    await cluster.connect()
    return new PartitionReader(cluster, Batch)
  }

  private addTopic(topic: string): Promise<void> {
    let added = this.topics.get(topic)
    if (!added) {
      added = this.cluster.addTargetTopic(topic)
      this.topics.set(topic, added)
      added.catch(() => this.topics.delete(topic))
    }
    return added
  }

  /** One fetch from each partition's leader, all leaders at once. */
  async fetch(topic: string, positions: ReadonlyMap<number, number>, options: FetchOptions): Promise<FetchedPartition[]> {
    const deadline = Date.now() + TRANSIENT_WAIT_MS
    for (let attempt = 0; ; attempt++) {
      try {
        await this.addTopic(topic)
        return await this.fetchOnce(topic, positions, options)
      } catch (error) {
        const e = error as { retriable?: boolean; type?: string; name?: string }
        // A leader moved or a broker restarted (its partitions without leaders until they are elected):
        // learn the new leaders and fetch again, for a bounded time.
        const again = kafkaFault(error) === 'transient' || (attempt < 5 && (e.retriable || e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSConnectionClosedError'))
        if (!again || Date.now() >= deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** attempt)))
        this.fetchConnections.clear()
        await this.cluster.refreshMetadata().catch(() => undefined)
      }
    }
  }

  private async fetchOnce(topic: string, positions: ReadonlyMap<number, number>, options: FetchOptions): Promise<FetchedPartition[]> {
    const partitions = [...positions.keys()]
    if (partitions.length === 0) return []
    const byLeader = this.cluster.findLeaderForPartitions(topic, partitions)
    const maxBytes = options.maxBytesPerPartition ?? 1024 * 1024
    const results = await Promise.all(
      Object.entries(byLeader).map(async ([nodeId, leaderPartitions]) => {
        const broker = await this.fetchBroker(nodeId)
        const { responses } = await broker.fetch({
          isolationLevel: READ_COMMITTED,
          maxWaitTime: options.maxWaitMs,
          minBytes: 1,
          maxBytes: maxBytes * leaderPartitions.length,
          topics: [{ topic, partitions: leaderPartitions.map((p) => ({ partition: p, fetchOffset: String(positions.get(p)), maxBytes })) }],
        })
        return responses.flatMap((response) =>
          response.partitions.map((data): FetchedPartition => {
            const from = positions.get(data.partition)!
            const batch = new this.Batch(topic, String(from), data)
            const highWatermark = Number(data.highWatermark)
            // Past the last record seen, filtered or not (control records, aborted ones, compaction gaps).
            const nextOffset = batch.isEmptyIncludingFiltered() ? from : Number(batch.lastOffset()) + 1
            const lso = Number((data as { lastStableOffset?: string }).lastStableOffset ?? -1)
            return { partition: data.partition, records: batch.messages, nextOffset, highWatermark, stableOffset: lso >= 0 ? Math.min(lso, highWatermark) : highWatermark }
          }),
        )
      }),
    )
    return results.flat()
  }

  /**
   * The broker, with its fetch connection open. kafkajs opens that connection on the first fetch, and two
   * fetches starting at once (two targets of one namespace) would each open a socket, one of which is
   * never closed: the first fetch per broker opens it, the others wait for it.
   */
  private async fetchBroker(nodeId: string): ReturnType<KafkaCluster['findBroker']> {
    const broker = await this.cluster.findBroker({ nodeId })
    let ready = this.fetchConnections.get(nodeId)
    if (!ready) {
      ready = broker.connectionPool ? broker.connectionPool.getConnection(1).then(() => undefined) : Promise.resolve()
      this.fetchConnections.set(nodeId, ready)
    }
    try {
      await ready
    } catch (error) {
      this.fetchConnections.delete(nodeId)
      throw error
    }
    return broker
  }

  async close(): Promise<void> {
    await this.cluster.disconnect().catch(() => undefined)
  }
}
