/**
 * Reaching a Kafka cluster: kafkajs, loaded only when a Kafka namespace or target is used, and its client
 * options built from a named cluster (TLS/mTLS from PEM files, SASL). Shared by the Kafka log backend
 * and the Kafka target; each converts kafkajs errors its own way.
 */
import { readFileSync } from 'node:fs'
import { createRequire, Module } from 'node:module'

import type { KafkaClusterSettings } from '../config/schema.js'
import { BackendUnavailableError, ClusterAccessError, InvalidRecordError, WalError } from '../errors.js'
import { registerCodecs } from './compression.js'
import { encodeRecord, frameRequest, produceRequest, recordBatchModule } from './record-encoding.js'

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
  replaceKafkajsModule('kafkajs/src/producer/groupMessagesPerPartition.js', ({ topic, partitionMetadata, messages, partitioner }: { topic: string; partitionMetadata: unknown[]; messages: PartitionedMessage[]; partitioner: Partitioner }) => {
    const result: Record<number, PartitionedMessage[]> = {}
    if (partitionMetadata.length === 0) return result
    for (const message of messages) (result[partitioner({ topic, partitionMetadata, message })] ??= []).push(message)
    return result
  })
}

/** Puts `exports` in Node's require cache as the kafkajs module `id`, before kafkajs requires it. */
function replaceKafkajsModule(id: string, exports: unknown): void {
  const require = createRequire(import.meta.url)
  const path = require.resolve(id)
  const replacement = new Module(path)
  replacement.filename = path
  replacement.loaded = true
  replacement.exports = exports
  require.cache[path] = replacement
}

let batchEncoders = false

/**
 * kafkajs 2.2.4 encodes each record into an encoder of its own and copies it five times more on the way
 * into a request, with a byte-at-a-time CRC: with wal's headers on every record, much of a produce's CPU.
 * This puts wal's encoders of the same bytes (record-encoding.ts) in place of its record, record batch
 * and produce request encoders and of its request framing, before kafkajs requires them.
 */
function useBatchEncoders(): void {
  if (batchEncoders) return
  batchEncoders = true
  replaceKafkajsModule('kafkajs/src/protocol/recordBatch/record/v0/index.js', encodeRecord)
  replaceKafkajsModule('kafkajs/src/protocol/recordBatch/v0/index.js', recordBatchModule)
  replaceKafkajsModule('kafkajs/src/protocol/requests/produce/v3/request.js', produceRequest)
  replaceKafkajsModule('kafkajs/src/protocol/request.js', frameRequest)
}

/** kafkajs, imported on first use (it is never part of the start-up path of other commands). */
export async function loadKafkajs(): Promise<KafkaModule> {
  quietNegativeTimeoutWarning()
  useLinearPartitionGrouping()
  useBatchEncoders()
  const kafkajs = await import('kafkajs')
  registerCodecs()
  return kafkajs
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

/**
 * Broker states that pass by themselves: a partition without a leader yet (after a restart, during an
 * election), a group coordinator still loading. Waited out with bounded retries on every Kafka path.
 */
const TRANSIENT_TYPES = new Set([
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'LEADER_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'REQUEST_TIMED_OUT',
  'KAFKA_STORAGE_ERROR',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'OFFSET_NOT_AVAILABLE',
  'BROKER_NOT_AVAILABLE',
  'REPLICA_NOT_AVAILABLE',
])

/** Refusals of one record (or batch of records) that no retry changes: the record is at fault. */
const RECORD_TYPES = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP'])

/**
 * What a kafkajs failure says about who is at fault — the one classifier for Kafka, used by the log
 * backend (exit codes) and the Kafka target (retry, pause, dead-letter):
 * - `record`: the broker refused the record itself (too large, invalid): reject it, keep its neighbours;
 * - `transient`: a broker state that passes (no leader yet, coordinator loading): wait and try again;
 * - `unreachable`: no broker answers: pause, the outage is the backend's;
 * - `auth`, `tls`: the cluster refuses the configured credentials: a configuration fault;
 * - `other`: anything else the brokers answered with.
 */
export type KafkaFault = 'record' | 'transient' | 'unreachable' | 'auth' | 'tls' | 'other'

export function kafkaFault(error: unknown, options: { ssl?: boolean } = {}): KafkaFault {
  const root = rootKafkaError(error)
  const outer = error as KafkaJsError
  const names = [outer.name, root.name]
  const message = root.message ?? outer.message ?? ''
  if (names.includes('KafkaJSSASLAuthenticationError')) return 'auth'
  // SASL asked of a listener that does not speak it (PLAINTEXT, SSL), or not this mechanism: the config's fault.
  if (root.type === 'ILLEGAL_SASL_STATE' || root.type === 'UNSUPPORTED_SASL_MECHANISM') return 'auth'
  if (root.type !== undefined && RECORD_TYPES.has(root.type)) return 'record'
  if (root.type !== undefined && TRANSIENT_TYPES.has(root.type)) return 'transient'
  if (names.includes('KafkaJSLockTimeout')) return 'transient'
  if (/certificate|self[- ]signed|SSL|TLS|alert/i.test(message) && options.ssl !== false) return 'tls'
  if (names.some((n) => CONNECTION_ERRORS.includes(n)) || /ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|ECONNRESET|Connection timeout|Closed connection/i.test(message)) return 'unreachable'
  return 'other'
}

/** How long transient broker states are waited out, in all, before a command gives up (exit 5). */
export const TRANSIENT_WAIT_MS = 60_000

/**
 * Runs a call to the cluster, waiting out transient broker states (see kafkaFault) with backoff for up to
 * `waitMs`; `between` runs before each new try (a metadata refresh). Other failures are thrown at once.
 */
export async function riding<T>(call: () => Promise<T>, options: { waitMs?: number; between?: () => Promise<unknown>; signal?: AbortSignal } = {}): Promise<T> {
  const deadline = Date.now() + (options.waitMs ?? TRANSIENT_WAIT_MS)
  for (let attempt = 0; ; attempt++) {
    try {
      return await call()
    } catch (error) {
      if (kafkaFault(error) !== 'transient' || Date.now() >= deadline || options.signal?.aborted) throw error
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** attempt, Math.max(0, deadline - Date.now()))))
      await options.between?.().catch(() => undefined)
    }
  }
}

/** A record larger than a topic takes: rejected before it is sent (exit 4), naming the limit and how to raise it. */
export function recordTooLarge(cluster: KafkaClusterSettings, topic: string, bytes: number, limitBytes: number): InvalidRecordError {
  return new InvalidRecordError(`the record takes about ${bytes} bytes, above what topic "${topic}" on Kafka cluster "${cluster.name}" takes (max.message.bytes ${limitBytes})`, {
    code: 'WAL_RECORD_TOO_LARGE',
    suggestions: [
      `raise the topic's limit, e.g. kafka-configs.sh --bootstrap-server ${cluster.brokers[0] ?? 'BROKER'} --alter --entity-type topics --entity-name ${topic} --add-config max.message.bytes=${Math.max(limitBytes * 2, bytes + 1024)} (the brokers' message.max.bytes and the consumers' fetch sizes must allow it too)`,
      "or lower the namespace's maxPayloadBytes, so that such payloads are refused when produced",
    ],
  })
}

/** A message that says what failed and how to fix it, for errors reaching the cluster. */
export function describeKafkaError(cluster: KafkaClusterSettings, error: unknown, context: { topic?: string } = {}): WalError {
  if (error instanceof WalError) return error
  const root = rootKafkaError(error)
  const outer = error as KafkaJsError
  const message = root.message ?? outer.message
  const where = `Kafka cluster "${cluster.name}" (${cluster.brokers.join(', ')})`
  switch (kafkaFault(error, { ssl: cluster.ssl !== false })) {
    case 'auth':
      if (root.type === 'ILLEGAL_SASL_STATE') {
        return new ClusterAccessError(`${where}: SASL is configured, but the broker's listener does not take SASL: ${message}`, {
          code: 'WAL_KAFKA_AUTH',
          cause: error,
          suggestions: [
            `point clusters.kafka.${cluster.name}.brokers at the brokers' SASL listener (SASL_PLAINTEXT or SASL_SSL), or remove clusters.kafka.${cluster.name}.sasl if this listener is meant (PLAINTEXT or SSL)`,
          ],
        })
      }
      return new ClusterAccessError(`${where}: authentication failed: ${message}`, {
        code: 'WAL_KAFKA_AUTH',
        cause: error,
        suggestions: [
          root.type === 'UNSUPPORTED_SASL_MECHANISM'
            ? `the brokers do not take this SASL mechanism: set clusters.kafka.${cluster.name}.sasl.mechanism to one their listener enables`
            : `check the user name, password and mechanism under clusters.kafka.${cluster.name}.sasl`,
        ],
      })
    case 'tls':
      return new ClusterAccessError(`${where}: TLS handshake failed: ${message}`, {
        code: 'WAL_KAFKA_TLS',
        cause: error,
        suggestions: [`check the CA, client certificate and key under clusters.kafka.${cluster.name}.ssl`],
      })
    case 'unreachable':
      return new BackendUnavailableError(`${where}: cannot reach the brokers: ${message}`, {
        code: 'WAL_KAFKA_UNREACHABLE',
        cause: error,
        suggestions: ['check that the brokers run and that host:port, TLS and SASL settings match their listeners', 'nothing was lost: run the command again once the cluster is back'],
      })
    case 'record': {
      const topic = context.topic ?? 'TOPIC'
      return new InvalidRecordError(`${where} refused the record: ${message}`, {
        code: root.type === 'MESSAGE_TOO_LARGE' || root.type === 'RECORD_LIST_TOO_LARGE' ? 'WAL_RECORD_TOO_LARGE' : 'WAL_KAFKA_REJECTED',
        cause: error,
        suggestions:
          root.type === 'MESSAGE_TOO_LARGE' || root.type === 'RECORD_LIST_TOO_LARGE'
            ? [
                `the topic takes records up to its max.message.bytes (the brokers' message.max.bytes, 1 MiB by default): raise it, e.g. kafka-configs.sh --alter --entity-type topics --entity-name ${topic} --add-config max.message.bytes=N`,
                'or lower the namespace\'s maxPayloadBytes so that such payloads are refused when produced',
              ]
            : ['the brokers refuse this record as it is: fix it and produce it again'],
      })
    }
    case 'transient':
      return new BackendUnavailableError(`${where}: ${message}`, {
        code: `WAL_KAFKA_${(root.type ?? 'ERROR').toUpperCase()}`,
        cause: error,
        suggestions: ['the brokers were still electing partition leaders (after a restart or the loss of a broker) and did not settle in time: run the command again in a moment; nothing was lost'],
      })
    default:
      return new BackendUnavailableError(`${where}: ${message}`, { code: `WAL_KAFKA_${(root.type ?? 'ERROR').toUpperCase()}`, cause: error })
  }
}
