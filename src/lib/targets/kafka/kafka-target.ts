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
import { WalError } from '../../errors.js'
import { kafkaClientConfig, kafkaFault, loadKafkajs, rootKafkaError } from '../../kafka/client.js'
import { chunkByPartitionBytes, recordBytes, sendChunks } from '../../kafka/record-batches.js'
import { encodeRecord, type OutgoingRecord } from '../../log/kafka/record-codec.js'
import { SendRounds } from '../send-rounds.js'
import { forwardedCopy, TargetError, type Target } from '../target.js'

export interface KafkaTargetOptions {
  name: string
  topic: string
  timeoutMs: number
  cluster: KafkaClusterSettings
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

  constructor(private readonly options: KafkaTargetOptions) {
    this.name = options.name
  }

  private connect(): Promise<Producer> {
    this.producer ??= (async () => {
      const kafkajs = await loadKafkajs()
      const kafka = new kafkajs.Kafka(kafkaClientConfig(this.options.cluster, kafkajs))
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
      await producer.connect()
      return producer
    })().catch((error: unknown) => {
      this.producer = undefined
      throw error
    })
    return this.producer
  }

  private readonly rounds = new SendRounds<OutgoingRecord>({
    maxRound: MAX_BATCH,
    // A round goes in requests the brokers take; a record they refuse fails alone (see record-batches.ts).
    send: async (records) => {
      const producer = await this.connect()
      const chunks = chunkByPartitionBytes(records, { bytes: recordBytes, partitionOf: (r) => String(r.partition ?? '*') })
      const outcomes = await sendChunks(
        chunks,
        async (chunk) => {
          await producer.send({ topic: this.options.topic, acks: -1, timeout: this.options.timeoutMs, messages: chunk })
          return chunk.map(() => undefined)
        },
        (error) => kafkaFault(error) === 'record',
      )
      return outcomes.map((o) => ('error' in o ? o.error : undefined))
    },
    classify: classifyKafkaError,
  })

  async apply(mutation: Mutation): Promise<void> {
    // A replica starts its own history, and its own routing: this hop's target header is not the next one's.
    return this.rounds.push(encodeRecord(forwardedCopy(mutation)))
  }

  async close(): Promise<void> {
    const producer = this.producer
    this.producer = undefined
    if (producer) await producer.then((p) => p.disconnect()).catch(() => undefined)
  }
}
