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
import { kafkaClientConfig, loadKafkajs } from '../../kafka/client.js'
import { encodeRecord, type OutgoingRecord } from '../../log/kafka/record-codec.js'
import { SendRounds } from '../send-rounds.js'
import { TargetError, type Target } from '../target.js'

export interface KafkaTargetOptions {
  name: string
  topic: string
  timeoutMs: number
  cluster: KafkaClusterSettings
}

type Producer = import('kafkajs').Producer

/** Records per send, at most. */
const MAX_BATCH = 1000

/** How a kafkajs failure affects the target. */
export function classifyKafkaError(error: unknown): TargetError {
  if (error instanceof TargetError) return error
  // Unreadable TLS files and the like: no retry will fix the configuration.
  if (error instanceof WalError) return new TargetError(error.message, { errorClass: 'fatal', code: error.code, cause: error })
  const e = error as Error & { name: string; retriable?: boolean; type?: string; cause?: unknown; originalError?: unknown }
  const root = (e.originalError ?? e.cause ?? e) as Error & { name: string; type?: string; retriable?: boolean }
  const message = root.message ?? e.message
  const names = [e.name, root.name]
  // Cannot reach or log in to the cluster: pause the target rather than spend attempts.
  if (names.some((n) => ['KafkaJSConnectionError', 'KafkaJSSASLAuthenticationError', 'KafkaJSBrokerNotFound', 'KafkaJSConnectionClosedError'].includes(n))) {
    return new TargetError(`Kafka: ${message}`, { errorClass: 'infrastructure', code: root.type ?? root.name, cause: error })
  }
  if (names.includes('KafkaJSRequestTimeoutError') || names.includes('KafkaJSNumberOfRetriesExceeded') || root.retriable === true) {
    return new TargetError(`Kafka: ${message}`, { errorClass: 'retryable', code: root.type ?? root.name, cause: error })
  }
  return new TargetError(`Kafka: ${message}`, { errorClass: root.retriable === false ? 'fatal' : 'retryable', code: root.type ?? root.name ?? 'KAFKA', cause: error })
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
    send: async (records) => {
      const producer = await this.connect()
      await producer.send({ topic: this.options.topic, acks: -1, timeout: this.options.timeoutMs, messages: records })
    },
    classify: classifyKafkaError,
  })

  async apply(mutation: Mutation): Promise<void> {
    // A replica starts its own history: the attempts made here are not the other region's.
    return this.rounds.push(encodeRecord({ ...mutation, attempts: 0, failures: [] }))
  }

  async close(): Promise<void> {
    const producer = this.producer
    this.producer = undefined
    if (producer) await producer.then((p) => p.disconnect()).catch(() => undefined)
  }
}
