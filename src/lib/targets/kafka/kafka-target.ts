/**
 * The Kafka target: forwards each mutation to a topic, in this or another cluster (cross-region
 * replication), with kafkajs's idempotent producer and acks from all in-sync replicas. The record keeps
 * the mutation's key (so Kafka's partitioner keeps its order) and headers, plus wal-id and
 * wal-created-at; its value is the payload (JSON text or bytes).
 */
import { readFileSync } from 'node:fs'

import type { KafkaClusterSettings } from '../../config/schema.js'
import type { Mutation } from '../../envelope/envelope.js'
import { TargetError, type Target } from '../target.js'

export interface KafkaTargetOptions {
  name: string
  topic: string
  timeoutMs: number
  cluster: KafkaClusterSettings
}

type KafkaModule = typeof import('kafkajs')
type Producer = import('kafkajs').Producer

/** kafkajs client options for a cluster: brokers, TLS/mTLS from PEM files, SASL. */
export function kafkaClientConfig(cluster: KafkaClusterSettings, kafkajs: KafkaModule): import('kafkajs').KafkaConfig {
  const read = (path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined
    try {
      return readFileSync(path)
    } catch (error) {
      throw new TargetError(`Kafka cluster "${cluster.name}": cannot read ${path}: ${(error as NodeJS.ErrnoException).code}`, { errorClass: 'fatal', code: 'TLS_FILE', cause: error })
    }
  }
  const ssl = typeof cluster.ssl === 'object' ? { ca: read(cluster.ssl.ca), cert: read(cluster.ssl.cert), key: read(cluster.ssl.key), rejectUnauthorized: cluster.ssl.rejectUnauthorized ?? true } : cluster.ssl
  return {
    clientId: cluster.clientId,
    brokers: cluster.brokers,
    ssl,
    ...(cluster.sasl ? { sasl: cluster.sasl as import('kafkajs').SASLOptions } : {}),
    connectionTimeout: cluster.connectionTimeoutMs,
    logLevel: kafkajs.logLevel.NOTHING,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
  }
}

/** How a kafkajs failure affects the target. */
export function classifyKafkaError(error: unknown): TargetError {
  if (error instanceof TargetError) return error
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
      const kafkajs = await import('kafkajs')
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
