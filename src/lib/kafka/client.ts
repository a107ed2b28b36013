/**
 * Reaching a Kafka cluster: kafkajs, loaded only when a Kafka namespace or target is used, and its client
 * options built from a named cluster (TLS/mTLS from PEM files, SASL). Shared by the Kafka log backend
 * and the Kafka target; each converts kafkajs errors its own way.
 */
import { readFileSync } from 'node:fs'
import { createRequire, Module } from 'node:module'

import type { KafkaClusterSettings } from '../config/schema.js'
import { BackendUnavailableError, ClusterAccessError, WalError } from '../errors.js'

export type KafkaModule = typeof import('kafkajs')

let quieted = false

/**
 * kafkajs 2.2.4 on Node 24 schedules a timer with a negative delay (tulios/kafkajs#1751): Node clamps it
 * to 1 ms and prints a TimeoutNegativeWarning. Harmless, and noise in an operator's terminal.
 */
function quietNegativeTimeoutWarning(): void {
  if (quieted) return
  quieted = true
  // Node's timers report through its own warning handler, not process.emitWarning: replace the printing
  // listener with one that prints everything else the same way.
  const printers = process.listeners('warning')
  process.removeAllListeners('warning')
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning') return
    for (const print of printers) print(warning)
  })
}

interface PartitionedMessage {
  partition?: number
}
type Partitioner = (args: { topic: string; partitionMetadata: unknown[]; message: PartitionedMessage }) => number

let linearGrouping = false

/**
 * kafkajs 2.2.4 groups a send's messages by partition by copying each partition's array for every
 * message: quadratic in the messages per partition, a tenth of a group-committed produce's CPU. This puts
 * a linear grouping with the same result (messages in order within each partition) in its place, before
 * kafkajs requires it.
 */
function useLinearPartitionGrouping(): void {
  if (linearGrouping) return
  linearGrouping = true
  const require = createRequire(import.meta.url)
  const path = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js')
  const grouping = new Module(path)
  grouping.filename = path
  grouping.loaded = true
  grouping.exports = ({ topic, partitionMetadata, messages, partitioner }: { topic: string; partitionMetadata: unknown[]; messages: PartitionedMessage[]; partitioner: Partitioner }) => {
    const result: Record<number, PartitionedMessage[]> = {}
    if (partitionMetadata.length === 0) return result
    for (const message of messages) (result[partitioner({ topic, partitionMetadata, message })] ??= []).push(message)
    return result
  }
  require.cache[path] = grouping
}

/** kafkajs, imported on first use (it is never part of the start-up path of other commands). */
export function loadKafkajs(): Promise<KafkaModule> {
  quietNegativeTimeoutWarning()
  useLinearPartitionGrouping()
  return import('kafkajs')
}

/** kafkajs client options for a cluster: brokers, TLS/mTLS from PEM files, SASL. */
export function kafkaClientConfig(cluster: KafkaClusterSettings, kafkajs: KafkaModule): import('kafkajs').KafkaConfig {
  const read = (path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined
    try {
      return readFileSync(path)
    } catch (error) {
      throw new ClusterAccessError(`Kafka cluster "${cluster.name}": cannot read ${path}: ${(error as NodeJS.ErrnoException).code}`, {
        code: 'WAL_KAFKA_TLS_FILE',
        cause: error,
        suggestions: [`fix the path under clusters.kafka.${cluster.name}.ssl`],
      })
    }
  }
  const ssl =
    typeof cluster.ssl === 'object'
      ? { ca: read(cluster.ssl.ca), cert: read(cluster.ssl.cert), key: read(cluster.ssl.key), rejectUnauthorized: cluster.ssl.rejectUnauthorized ?? true }
      : cluster.ssl
  return {
    clientId: cluster.clientId,
    brokers: cluster.brokers,
    ssl,
    ...(cluster.sasl ? { sasl: cluster.sasl as import('kafkajs').SASLOptions } : {}),
    connectionTimeout: cluster.connectionTimeoutMs,
    authenticationTimeout: cluster.connectionTimeoutMs,
    logLevel: kafkajs.logLevel.NOTHING,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
  }
}

type KafkaJsError = Error & { name: string; type?: string; retriable?: boolean; cause?: unknown; originalError?: unknown }

/** The innermost kafkajs error: retries wrap the one that counts. */
export function rootKafkaError(error: unknown): KafkaJsError {
  let e = error as KafkaJsError
  for (let depth = 0; depth < 5; depth++) {
    const inner = (e.originalError ?? e.cause) as KafkaJsError | undefined
    if (!inner || typeof inner !== 'object' || !('message' in inner)) break
    e = inner
  }
  return e
}

const CONNECTION_ERRORS = ['KafkaJSConnectionError', 'KafkaJSBrokerNotFound', 'KafkaJSConnectionClosedError', 'KafkaJSNoBrokerAvailableError', 'KafkaJSRequestTimeoutError']

/** A message that says what failed and how to fix it, for errors reaching the cluster. */
export function describeKafkaError(cluster: KafkaClusterSettings, error: unknown): WalError {
  if (error instanceof WalError) return error
  const root = rootKafkaError(error)
  const outer = error as KafkaJsError
  const names = [outer.name, root.name]
  const message = root.message ?? outer.message
  const where = `Kafka cluster "${cluster.name}" (${cluster.brokers.join(', ')})`
  if (names.includes('KafkaJSSASLAuthenticationError')) {
    return new ClusterAccessError(`${where}: authentication failed: ${message}`, {
      code: 'WAL_KAFKA_AUTH',
      cause: error,
      suggestions: [`check the user name, password and mechanism under clusters.kafka.${cluster.name}.sasl`],
    })
  }
  if (/certificate|self[- ]signed|SSL|TLS|alert/i.test(message) && cluster.ssl !== false) {
    return new ClusterAccessError(`${where}: TLS handshake failed: ${message}`, {
      code: 'WAL_KAFKA_TLS',
      cause: error,
      suggestions: [`check the CA, client certificate and key under clusters.kafka.${cluster.name}.ssl`],
    })
  }
  if (names.some((n) => CONNECTION_ERRORS.includes(n)) || /ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|Connection timeout|Closed connection/i.test(message)) {
    return new BackendUnavailableError(`${where}: cannot reach the brokers: ${message}`, {
      code: 'WAL_KAFKA_UNREACHABLE',
      cause: error,
      suggestions: ['check that the brokers run and that host:port, TLS and SASL settings match their listeners', 'nothing was lost: run the command again once the cluster is back'],
    })
  }
  return new BackendUnavailableError(`${where}: ${message}`, { code: `WAL_KAFKA_${(root.type ?? 'ERROR').toUpperCase()}`, cause: error })
}
