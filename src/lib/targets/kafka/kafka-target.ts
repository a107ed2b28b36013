/**
 * The Kafka target: forwards each mutation to a topic, in this or another cluster (cross-region
 * replication), with kafkajs's idempotent producer and acks from all in-sync replicas. The record keeps
 * the mutation's key (so Kafka's partitioner keeps its order) and headers, plus wal-id and
 * wal-created-at; its value is the payload (JSON text or bytes).
 */
import type { KafkaClusterSettings } from '../../config/schema.js'
import type { Mutation } from '../../envelope/envelope.js'
import { WalError } from '../../errors.js'
import { kafkaClientConfig, loadKafkajs } from '../../kafka/client.js'
import { TargetError, type Target } from '../target.js'

export interface KafkaTargetOptions {
  name: string
  topic: string
  timeoutMs: number
  cluster: KafkaClusterSettings
}

type Producer = import('kafkajs').Producer

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

  async apply(mutation: Mutation): Promise<void> {
    try {
      const producer = await this.connect()
      await producer.send({
        topic: this.options.topic,
        acks: -1,
        timeout: this.options.timeoutMs,
        messages: [
          {
            key: mutation.key,
            value: mutation.payload.encoding === 'json' ? mutation.payload.json : Buffer.from(mutation.payload.bytes),
            headers: { ...mutation.headers, 'wal-id': mutation.id, 'wal-created-at': new Date(mutation.createdAtMs).toISOString() },
            timestamp: String(mutation.createdAtMs),
          },
        ],
      })
    } catch (error) {
      throw classifyKafkaError(error)
    }
  }

  async close(): Promise<void> {
    const producer = this.producer
    this.producer = undefined
    if (producer) await producer.then((p) => p.disconnect()).catch(() => undefined)
  }
}
