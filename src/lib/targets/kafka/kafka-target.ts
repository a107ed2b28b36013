/**
 * The Kafka target: forwards each mutation to a topic, in this or another cluster (cross-region
 * replication), with kafkajs's idempotent producer and acks from all in-sync replicas. The record is
 * written as a Kafka namespace's log stores it (key, payload value, headers, `wal-*` fields), so the
 * topic can itself be declared as a namespace in the other region and consumed there.
 *
 * Applies that arrive while a send is in flight go together in the next one: with many keys applied
 * concurrently, records travel in batches, yet each apply still resolves only once its record is durable.
 */
import type { KafkaClusterSettings } from '../../config/schema.js'
import type { Mutation } from '../../envelope/envelope.js'
import { ConfigError, WalError } from '../../errors.js'
import { kafkaClientConfig, kafkaFault, loadKafkajs, recordTooLarge, rootKafkaError } from '../../kafka/client.js'
import { BATCH_OVERHEAD_BYTES, batchBudget, chunkByPartitionBytes, DEFAULT_MAX_MESSAGE_BYTES, maxMessageBytes, recordBytes, sendChunks } from '../../kafka/record-batches.js'
import { topicPartitions } from '../../kafka/topics.js'
import { encodeRecord, type OutgoingRecord } from '../../log/kafka/record-codec.js'
import { partitionerFor, type PartitionerName } from '../../log/partitioner.js'
import { SendRounds } from '../send-rounds.js'
import { forwardedCopy, TargetError, type Target } from '../target.js'
import { compressionType, type Compression } from '../../kafka/compression.js'

export interface KafkaTargetOptions {
  name: string
  topic: string
  timeoutMs: number
  cluster: KafkaClusterSettings
  /** How record batches are compressed (default: none). */
  compression?: Compression
  /**
   * Which partition a key's records go to (default murmur2, as kafkajs and Kafka's Java client): the
   * `partitioner` of the namespace that reads the topic, so its own producers put a key where it does.
   */
  partitioner?: PartitionerName
}

type Producer = import('kafkajs').Producer

/** Records per send, at most. */
const MAX_BATCH = 1000

/** How a kafkajs failure affects the target: kafkaFault decides who is at fault, as for the log. */
export function classifyKafkaError(error: unknown): TargetError {
  if (error instanceof TargetError) return error
  // Unreadable TLS files and the like: no retry will fix the configuration.
  if (error instanceof WalError) return new TargetError(error.message, { errorClass: 'fatal', code: error.code, cause: error })
  const root = rootKafkaError(error)
  const message = `Kafka: ${root.message ?? (error as Error).message}`
  const code = root.type ?? root.name ?? 'KAFKA'
  switch (kafkaFault(error)) {
    case 'record':
      return new TargetError(`${message} (raise the topic's max.message.bytes, or lower the namespace's maxPayloadBytes)`, { errorClass: 'fatal', code, cause: error })
    case 'transient':
      return new TargetError(message, { errorClass: 'retryable', code, cause: error })
    case 'unreachable':
    case 'auth':
    case 'tls':
      // Cannot reach or log in to the cluster: pause the target rather than spend attempts.
      return new TargetError(message, { errorClass: 'infrastructure', code, cause: error })
    default:
      return new TargetError(message, { errorClass: root.retriable === false ? 'fatal' : 'retryable', code, cause: error })
  }
}

export class KafkaTarget implements Target {
  readonly name: string
  private producer: Promise<Producer> | undefined

  constructor(
    private readonly options: KafkaTargetOptions,
    /** The topic's max.message.bytes: larger records are dead-lettered without being sent. */
    private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
  ) {
    this.name = options.name
  }

  /** kafkajs's code of the configured compression, known once kafkajs is loaded. */
  private compressionCode = 0

  /**
   * A target whose topic was checked: a missing topic stops the consumer at start (exit 3, as a missing
   * Cassandra keyspace does) instead of dead-lettering every mutation one by one. A cluster that cannot
   * be reached or refuses the login now is left to the pipeline, which pauses the target until it answers.
   */
  static async open(options: KafkaTargetOptions): Promise<KafkaTarget> {
    const kafkajs = await loadKafkajs()
    const admin = new kafkajs.Kafka(kafkaClientConfig(options.cluster, kafkajs)).admin()
    let partitions
    let limit
    try {
      await admin.connect()
      partitions = await topicPartitions(admin, options.topic)
      if (partitions !== null) limit = await maxMessageBytes(admin, options.topic)
    } catch {
      return new KafkaTarget(options)
    } finally {
      await admin.disconnect().catch(() => undefined)
    }
    if (partitions === null) {
      throw new ConfigError(`target "${options.name}": topic "${options.topic}" does not exist on Kafka cluster "${options.cluster.name}"`, {
        code: 'WAL_TARGET_TOPIC',
        suggestions: ['create it with `wal ns init -n NAMESPACE` (it creates the topics of the namespace\'s Kafka targets), or on the cluster'],
      })
    }
    return new KafkaTarget(options, limit)
  }

  private connect(): Promise<Producer> {
    this.producer ??= (async () => {
      const kafkajs = await loadKafkajs()
      this.compressionCode = compressionType(kafkajs, this.options.compression ?? 'none')
      const kafka = new kafkajs.Kafka(kafkaClientConfig(this.options.cluster, kafkajs))
      const partitionOf = partitionerFor(this.options.partitioner ?? 'murmur2')
      const producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: () => ({ partitionMetadata, message }) => partitionOf(String(message.key), partitionMetadata.length),
      })
      await producer.connect()
      return producer
    })().catch((error: unknown) => {
      this.producer = undefined
      throw error
    })
    return this.producer
  }

  /** A record to send, with what recordBytes() says it costs (reckoned once). */
  private readonly rounds = new SendRounds<{ record: OutgoingRecord; bytes: number }>({
    maxRound: MAX_BATCH,
    // A round goes in requests the brokers take; a record they refuse fails alone (see record-batches.ts).
    send: async (items) => {
      const { topic, cluster, timeoutMs } = this.options
      const limit = this.maxMessageBytes
      const errors: unknown[] = new Array<unknown>(items.length).fill(undefined)
      const fitting: number[] = []
      for (let i = 0; i < items.length; i++) {
        const { bytes } = items[i]!
        if (bytes + BATCH_OVERHEAD_BYTES > limit) errors[i] = recordTooLarge(cluster, topic, bytes, limit)
        else fitting.push(i)
      }
      const chunks = chunkByPartitionBytes(fitting, { bytes: (i) => items[i]!.bytes, partitionOf: (i) => String(items[i]!.record.partition ?? '*'), maxBytes: batchBudget(limit) })
      const outcomes = await sendChunks(
        chunks,
        async (chunk) => {
          const producer = await this.connect()
          try {
            await producer.send({ topic, acks: -1, timeout: timeoutMs, compression: this.compressionCode, messages: chunk.map((i) => items[i]!.record) })
          } catch (error) {
            // Its sequence numbers may no longer match the brokers': the next send starts a new producer.
            this.producer = undefined
            void producer.disconnect().catch(() => undefined)
            throw error
          }
          return chunk.map(() => undefined)
        },
        (error) => kafkaFault(error) === 'record',
      )
      fitting.forEach((i, n) => {
        const outcome = outcomes[n]!
        if ('error' in outcome) errors[i] = outcome.error
      })
      return errors
    },
    classify: classifyKafkaError,
  })

  async apply(mutation: Mutation): Promise<void> {
    // A replica starts its own history, and its own routing: this hop's target header is not the next one's.
    const record = encodeRecord(forwardedCopy(mutation))
    return this.rounds.push({ record, bytes: recordBytes(record) })
  }

  /**
   * A page of mutations (keys with nothing else pending) in the sends of one round: one request per
   * broker for the page instead of one per mutation, in page order, so each partition keeps its keys'
   * order. A record larger than the topic takes fails the whole batch before anything is sent, and the
   * consumer applies each mutation again on its own, so only that one is dead-lettered. A send that
   * fails throws too; records of the page that the brokers had already taken are then sent again by the
   * one-at-a-time applies (at least once, as after any retried send).
   */
  async applyBatch(mutations: readonly Mutation[]): Promise<void> {
    const items = new Array<{ record: OutgoingRecord; bytes: number }>(mutations.length)
    const limit = this.maxMessageBytes
    for (let i = 0; i < mutations.length; i++) {
      const record = encodeRecord(forwardedCopy(mutations[i]!))
      const bytes = recordBytes(record)
      if (bytes + BATCH_OVERHEAD_BYTES > limit) throw classifyKafkaError(recordTooLarge(this.options.cluster, this.options.topic, bytes, limit))
      items[i] = { record, bytes }
    }
    return this.rounds.pushAll(items)
  }

  async close(): Promise<void> {
    const producer = this.producer
    this.producer = undefined
    if (producer) await producer.then((p) => p.disconnect()).catch(() => undefined)
  }
}
