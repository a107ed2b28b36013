/**
 * The configuration file's schema and its defaults, in one place. `.walrc.example` documents every key
 * here; keep the two in step.
 */
import * as v from 'valibot'

import { NamespaceName } from '../envelope/envelope.js'
import type { Compression } from '../kafka/compression.js'
import { CONNECTION_HEADERS } from '../targets/http/http-target.js'
import { lazy } from '../validation.js'
import { DaemonConfigSchema, type DaemonSettings } from './daemon.js'

/** A URL a target or endpoint can use: http or https only (not file:, data:, javascript:, …). */
const HttpUrl = lazy(() => v.pipe(
  v.string('a URL'),
  v.url('an http(s) URL'),
  v.check((url) => /^https?:$/i.test(new URL(url).protocol), 'an http(s) URL (http:// or https://; other schemes are refused)'),
))

/** Defaults for every setting that has one. */
export const DEFAULTS = {
  partitions: 8,
  maxPayloadBytes: 1024 * 1024,
  /** A transaction without its completion marker this long after its first part is aborted. */
  txnTimeoutMs: 300_000,
  backend: 'embedded',
  retry: { maxAttempts: 10, initialBackoffMs: 200, maxBackoffMs: 600_000, multiplier: 2, jitter: 0.2 },
  httpTimeoutMs: 10_000,
  cassandra: {
    consistency: 'localQuorum',
    concurrency: 64,
    timeoutMs: 12_000,
    // Cassandra refuses batches above batch_size_fail_threshold (50 KiB by default); leave a margin,
    // since wal estimates a statement's size from its values.
    maxBatchBytes: 40 * 1024,
    connectTimeoutMs: 5_000,
  },
} as const

/** How a target retries: attempts, and exponential backoff between them with a random spread. */
export interface RetryPolicy {
  /** Attempts in all, the first included; then the mutation goes to the DLQ. */
  maxAttempts: number
  initialBackoffMs: number
  maxBackoffMs: number
  multiplier: number
  /** Each backoff is spread by up to ± this fraction. */
  jitter: number
}

export const MAX_PARTITIONS = 1024
export const MAX_PAYLOAD_BYTES_LIMIT = 64 * 1024 * 1024

const Partitions = lazy(() => v.pipe(
  v.number('a whole number of partitions'),
  v.integer('a whole number of partitions'),
  v.minValue(1, `a number of partitions from 1 to ${MAX_PARTITIONS}`),
  v.maxValue(MAX_PARTITIONS, `a number of partitions from 1 to ${MAX_PARTITIONS}`),
))

const MaxPayloadBytes = lazy(() => v.pipe(
  v.number('a size in bytes'),
  v.integer('a whole number of bytes'),
  v.minValue(1, `a size from 1 to ${MAX_PAYLOAD_BYTES_LIMIT} bytes`),
  v.maxValue(MAX_PAYLOAD_BYTES_LIMIT, `a size from 1 to ${MAX_PAYLOAD_BYTES_LIMIT} bytes`),
))

const WholeMs = (what: string, max: number) =>
  v.pipe(v.number(`${what} in milliseconds`), v.integer(`whole milliseconds`), v.minValue(0, `${what} from 0 to ${max} ms`), v.maxValue(max, `${what} from 0 to ${max} ms`))

const TxnTimeoutMs = lazy(() => v.pipe(v.number('a timeout in milliseconds'), v.integer('whole milliseconds'), v.minValue(100, 'a timeout from 100 to 604800000 ms (7 days)'), v.maxValue(604_800_000, 'a timeout from 100 to 604800000 ms (7 days)')))

const RetrySchema = lazy(() => v.strictObject({
  maxAttempts: v.optional(v.pipe(v.number('a number of attempts'), v.integer('a whole number of attempts'), v.minValue(1, 'at least 1 attempt'), v.maxValue(1000, 'at most 1000 attempts'))),
  initialBackoffMs: v.optional(WholeMs('a backoff', 86_400_000)),
  maxBackoffMs: v.optional(WholeMs('a backoff', 30 * 86_400_000)),
  multiplier: v.optional(v.pipe(v.number('a multiplier'), v.minValue(1, 'a multiplier from 1 to 10'), v.maxValue(10, 'a multiplier from 1 to 10'))),
  jitter: v.optional(v.pipe(v.number('a fraction'), v.minValue(0, 'a fraction from 0 to 1'), v.maxValue(1, 'a fraction from 0 to 1'))),
}))

/** "100/s", "6000/m", "50000/h", or a number per second. */
const Rate = lazy(() => v.union(
  [
    v.pipe(v.number(), v.minValue(0.001)),
    v.pipe(v.string(), v.regex(/^\d+(\.\d+)?\/(s|m|h)$/), v.check((rate) => Number(rate.split('/')[0]) > 0, 'a rate above zero, such as "100/s"')),
  ],
  'a rate such as "100/s", "6000/m" or "50000/h"',
))

/** An SQS queue name without the ".fifo" suffix (wal adds it for FIFO queues, and "-N" per shard). */
const QueueName = lazy(() => v.pipe(v.string('a queue name'), v.regex(/^[A-Za-z0-9_-]{1,70}$/, 'a queue name: up to 70 letters, digits, "_" or "-" (wal adds "-N" per shard and ".fifo")')))

/** Cassandra's consistency levels for writes (lower case, as in CQL's CONSISTENCY command). */
export const CONSISTENCY_LEVELS = ['any', 'one', 'two', 'three', 'quorum', 'all', 'localQuorum', 'eachQuorum', 'localOne'] as const
export type ConsistencyLevel = (typeof CONSISTENCY_LEVELS)[number]

/** An unquoted CQL identifier: what wal puts into statements without quoting. */
const CqlName = (what: string) => v.pipe(v.string(what), v.regex(/^[A-Za-z][A-Za-z0-9_]{0,47}$/, `${what}: up to 48 letters, digits and _, starting with a letter`))

/** A CQL type as CREATE TABLE takes it: text, int, list<text>, frozen<map<text, int>>, … */
const CqlType = lazy(() => v.pipe(v.string('a CQL type'), v.regex(/^[a-z][a-z0-9_]*(<[a-z0-9_<>, ]+>)?$/, 'a CQL type such as text, bigint or map<text, int>')))

/** A table a Cassandra target declares: its columns with their CQL types, and its primary key. */
const CassandraTableSchema = lazy(() => v.strictObject({
  columns: v.pipe(v.record(CqlName('a column name'), CqlType), v.check((c) => Object.keys(c).length > 0, 'at least one column')),
  partitionKey: v.pipe(v.array(CqlName('a column name')), v.minLength(1, 'at least one partition key column')),
  clusteringKey: v.optional(v.array(CqlName('a column name'))),
}))

const TargetName = lazy(() => v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a target name: letters, digits, ".", "_" or "-"')))
const common = lazy(() => ({ retry: v.optional(RetrySchema), rate: v.optional(Rate) }))

/** How record batches sent to Kafka are compressed. */
const CompressionSetting = lazy(() => v.picklist(['none', 'gzip', 'snappy', 'lz4', 'zstd'], 'a compression: "none", "gzip", "snappy", "lz4" or "zstd"'))

/** Which partition a key's records go to on a Kafka topic (see src/lib/log/partitioner.ts). */
const PartitionerSetting = lazy(() => v.picklist(['murmur2', 'consistent_random'], '"murmur2" (Kafka\'s Java client, the default) or "consistent_random" (librdkafka\'s default: kcat, confluent-kafka)'))

export const TargetConfigSchema = lazy(() => v.variant(
  'type',
  [
    v.strictObject({ type: v.literal('kv'), path: v.optional(v.pipe(v.string('a file path'), v.minLength(1))), ...common }),
    v.strictObject({
      type: v.literal('http'),
      url: HttpUrl,
      method: v.optional(v.picklist(['POST', 'PUT'], 'POST or PUT')),
      /** What the request carries: the payload, or the whole envelope (for another wal's write API). */
      body: v.optional(v.picklist(['payload', 'envelope'], '"payload" or "envelope"')),
      timeoutMs: v.optional(WholeMs('a timeout', 3_600_000)),
      // What fetch can send: a token for the name; Latin-1 without line breaks or NUL for the value.
      headers: v.optional(
        v.record(
          v.pipe(
            v.string('a header name'),
            v.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'a header name (letters, digits and !#$%&\'*+.^_`|~-)'),
            v.check((name) => !CONNECTION_HEADERS.has(name.toLowerCase()), `a header name HTTP does not set itself (not ${[...CONNECTION_HEADERS].join(', ')})`),
          ),
          v.pipe(v.string('a header value'), v.regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'a header value HTTP can carry: Latin-1 characters (U+0000 to U+00FF), no line breaks or control characters')),
        ),
      ),
      ...common,
    }),
    v.strictObject({ type: v.literal('file'), path: v.pipe(v.string('a file path or "-" for stdout'), v.minLength(1)), ...common }),
    v.strictObject({
      type: v.literal('kafka'),
      cluster: v.pipe(v.string('the name of a cluster under clusters.kafka'), v.minLength(1)),
      topic: v.pipe(v.string('a topic name'), v.regex(/^[A-Za-z0-9._-]{1,249}$/, 'a topic name: letters, digits, ".", "_" or "-"')),
      timeoutMs: v.optional(WholeMs('a timeout', 3_600_000)),
      compression: v.optional(CompressionSetting),
      /** Where a key's records go: as the namespace that reads the topic places them (its `partitioner`). */
      partitioner: v.optional(PartitionerSetting),
      ...common,
    }),
    v.strictObject({
      type: v.literal('sqs'),
      cluster: v.pipe(v.string('the name of a cluster under clusters.sqs'), v.minLength(1)),
      queue: QueueName,
      fifo: v.optional(v.boolean('true or false')),
      ...common,
    }),
    v.strictObject({
      type: v.literal('cassandra'),
      cluster: v.pipe(v.string('the name of a cluster under clusters.cassandra'), v.minLength(1)),
      keyspace: v.optional(CqlName('a keyspace name')),
      consistency: v.optional(v.picklist(CONSISTENCY_LEVELS, `a consistency level: ${CONSISTENCY_LEVELS.join(', ')}`)),
      concurrency: v.optional(v.pipe(v.number('a number of requests'), v.integer('a whole number of requests'), v.minValue(1, 'a concurrency from 1 to 4096'), v.maxValue(4096, 'a concurrency from 1 to 4096'))),
      timeoutMs: v.optional(WholeMs('a timeout', 600_000)),
      maxBatchBytes: v.optional(v.pipe(v.number('a size in bytes'), v.integer('whole bytes'), v.minValue(0, 'a size from 0 to 16777216 bytes'), v.maxValue(16 * 1024 * 1024, 'a size from 0 to 16777216 bytes'))),
      deleteJitterMs: v.optional(WholeMs('a jitter', 30 * 86_400_000)),
      /** For `wal ns init` (creates the keyspace when missing): its replication, as in CREATE KEYSPACE. */
      replication: v.optional(v.record(v.string(), v.union([v.string(), v.number()]), 'replication settings, e.g. { class: NetworkTopologyStrategy, dc1: 3 }')),
      /** Tables the target writes: checked at consumer start, created by `wal ns init`. */
      tables: v.optional(v.record(CqlName('a table name'), CassandraTableSchema)),
      ...common,
    }),
  ],
  'a target with "type": "kv", "http", "file", "kafka", "sqs" or "cassandra"',
))

const TopicName = lazy(() => v.pipe(v.string('a topic name'), v.regex(/^[A-Za-z0-9._-]{1,200}$/, 'a topic name: up to 200 letters, digits, ".", "_" or "-"')))

/** A context's name, as --context and `wal config use-context` take it. */
export const ContextName = lazy(() => v.pipe(v.string('a context name'), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a context name: 1-64 letters, digits, ".", "_" or "-"')))

export const NamespaceConfigSchema = lazy(() => v.strictObject({
  backend: v.optional(v.picklist(['embedded', 'kafka', 'sqs'], 'a backend: "embedded", "kafka" or "sqs"')),
  /** Kafka and SQS namespaces: the cluster (under clusters.kafka or clusters.sqs) that holds the log. */
  cluster: v.optional(v.pipe(v.string('the name of a cluster under clusters.kafka or clusters.sqs'), v.minLength(1))),
  /** SQS namespaces: the queue name (default: the namespace's, dots made dashes), FIFO or not, how many shard queues. */
  queue: v.optional(QueueName),
  fifo: v.optional(v.boolean('true or false')),
  shards: v.optional(v.pipe(v.number('a number of shard queues'), v.integer('a whole number'), v.minValue(1, 'from 1 to 64 shard queues'), v.maxValue(64, 'from 1 to 64 shard queues'))),
  maxReceiveCount: v.optional(v.pipe(v.number('a receive count'), v.integer('a whole number'), v.minValue(1, 'a receive count from 1 to 1000'), v.maxValue(1000, 'a receive count from 1 to 1000'))),
  visibilityTimeoutSeconds: v.optional(v.pipe(v.number('seconds'), v.integer('whole seconds'), v.minValue(5, 'from 5 to 43200 seconds'), v.maxValue(43_200, 'from 5 to 43200 seconds'))),
  maxNativeDelaySeconds: v.optional(v.pipe(v.number('seconds'), v.integer('whole seconds'), v.minValue(1, 'from 1 to 900 seconds'), v.maxValue(900, 'from 1 to 900 seconds'))),
  topic: v.optional(TopicName),
  /** Kafka namespaces: how keys map to partitions (murmur2, or librdkafka's consistent_random). */
  /** Kafka namespaces: how the record batches of the log (and its DLQ and state topics) are compressed. */
  compression: v.optional(CompressionSetting),
  partitioner: v.optional(PartitionerSetting),
  replicationFactor: v.optional(v.pipe(v.number('a replication factor'), v.integer('a whole number'), v.minValue(1, 'a replication factor from 1 to 16'), v.maxValue(16, 'a replication factor from 1 to 16'))),
  retentionMs: v.optional(v.pipe(v.number('a retention in milliseconds'), v.integer('whole milliseconds'), v.minValue(-1, 'a retention in ms, or -1 to keep forever'))),
  partitions: v.optional(Partitions),
  maxPayloadBytes: v.optional(MaxPayloadBytes),
  /** How long a transaction may stay without its completion marker before it is aborted. */
  txnTimeoutMs: v.optional(TxnTimeoutMs),
  description: v.optional(v.string('a description string')),
  targets: v.optional(v.record(TargetName, TargetConfigSchema)),
  retry: v.optional(RetrySchema),
  rate: v.optional(Rate),
}))

/** A Kafka cluster: brokers, and how to reach them (TLS, mTLS, SASL). File paths are relative to the config. */
export const KafkaClusterSchema = lazy(() => v.strictObject({
  brokers: v.pipe(v.array(v.pipe(v.string(), v.regex(/^[^\s:]+:\d+$/, 'host:port'))), v.minLength(1, 'at least one broker host:port')),
  clientId: v.optional(v.string('a client id')),
  ssl: v.optional(
    v.union([
      v.boolean('true, or an object with ca, cert and key files'),
      v.strictObject({
        ca: v.optional(v.string('a CA certificate file (PEM)')),
        cert: v.optional(v.string('a client certificate file (PEM)')),
        key: v.optional(v.string('a client key file (PEM)')),
        rejectUnauthorized: v.optional(v.boolean()),
      }),
    ]),
  ),
  sasl: v.optional(
    v.strictObject({
      mechanism: v.picklist(['plain', 'scram-sha-256', 'scram-sha-512'], 'plain, scram-sha-256 or scram-sha-512'),
      username: v.string('a user name'),
      password: v.string('a password'),
    }),
  ),
  connectionTimeoutMs: v.optional(WholeMs('a timeout', 600_000)),
  deliveryTimeoutMs: v.optional(WholeMs('a timeout', 3_600_000)),
}))

/** An SQS endpoint: a region, an endpoint override (ElasticMQ, LocalStack, a VPC endpoint), credentials. */
export const SqsClusterSchema = lazy(() => v.strictObject({
  region: v.pipe(v.string('an AWS region such as us-east-1'), v.minLength(1)),
  endpoint: v.optional(HttpUrl),
  /** A profile of ~/.aws/config; without it (and without keys), the AWS default credential chain. */
  profile: v.optional(v.pipe(v.string('a profile name'), v.minLength(1))),
  accessKeyId: v.optional(v.pipe(v.string('an access key id'), v.minLength(1))),
  secretAccessKey: v.optional(v.pipe(v.string('a secret access key'), v.minLength(1))),
  sessionToken: v.optional(v.string('a session token')),
  requestTimeoutMs: v.optional(WholeMs('a timeout', 600_000)),
  connectionTimeoutMs: v.optional(WholeMs('a timeout', 600_000)),
}))


/** A Cassandra cluster: contact points, local data center, credentials and TLS. File paths are relative to the config. */
export const CassandraClusterSchema = lazy(() => v.strictObject({
  contactPoints: v.pipe(v.array(v.pipe(v.string(), v.regex(/^[^\s:]+(:\d+)?$/, 'host or host:port'))), v.minLength(1, 'at least one contact point host[:port]')),
  localDataCenter: v.pipe(v.string('the name of the local data center'), v.minLength(1)),
  keyspace: v.optional(CqlName('a keyspace name')),
  auth: v.optional(v.strictObject({ username: v.string('a user name'), password: v.string('a password') })),
  tls: v.optional(
    v.union([
      v.boolean('true, or an object with ca, cert and key files'),
      v.strictObject({
        ca: v.optional(v.string('a CA certificate file (PEM)')),
        cert: v.optional(v.string('a client certificate file (PEM)')),
        key: v.optional(v.string('a client key file (PEM)')),
        rejectUnauthorized: v.optional(v.boolean()),
      }),
    ]),
  ),
  connectTimeoutMs: v.optional(WholeMs('a timeout', 600_000)),
}))

export const ConfigSchema = lazy(() => v.strictObject({
  clusters: v.optional(
    v.strictObject({
      kafka: v.optional(v.record(v.string(), KafkaClusterSchema)),
      sqs: v.optional(v.record(v.string(), SqsClusterSchema)),
      cassandra: v.optional(v.record(v.string(), CassandraClusterSchema)),
    }),
  ),
  stateDir: v.optional(v.pipe(v.string('a directory path'), v.minLength(1, 'a non-empty directory path'))),
  /** The namespace of commands given no -n (WAL_NAMESPACE overrides it). Default: "default". */
  defaultNamespace: v.optional(NamespaceName),
  /**
   * Named sets of settings (as kubectl's and kafkactl's contexts): the one in use (--context,
   * WAL_CONTEXT, else `wal config use-context`) is merged over the rest of the file, key by key.
   */
  contexts: v.optional(v.record(ContextName, v.record(v.string(), v.unknown(), 'a context: settings as at the top level of the file'))),
  autoCreateNamespaces: v.optional(v.boolean('true or false')),
  defaults: v.optional(
    v.strictObject({
      partitions: v.optional(Partitions),
      maxPayloadBytes: v.optional(MaxPayloadBytes),
      txnTimeoutMs: v.optional(TxnTimeoutMs),
      retry: v.optional(RetrySchema),
    }),
  ),
  namespaces: v.optional(v.record(NamespaceName, NamespaceConfigSchema)),
  /** `wal daemon`: its HTTP API and consumers (see daemon.ts). */
  daemon: v.optional(DaemonConfigSchema),
}))

export type ConfigFile = v.InferOutput<typeof ConfigSchema>
export type NamespaceConfig = v.InferOutput<typeof NamespaceConfigSchema>
export type TargetConfig = v.InferOutput<typeof TargetConfigSchema>

/** A Kafka cluster's settings, certificate paths resolved. */
export interface KafkaClusterSettings {
  name: string
  brokers: string[]
  clientId: string
  ssl: boolean | { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean }
  sasl: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string } | null
  connectionTimeoutMs: number
  /** How long a write may take, retries included, before its outcome is reported as unknown. */
  deliveryTimeoutMs: number
}

/** An SQS cluster's settings. */
export interface SqsClusterSettings {
  name: string
  region: string
  endpoint: string | null
  profile: string | null
  /** Static credentials; null: the profile, or the AWS default chain. */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | null
  requestTimeoutMs: number
  connectionTimeoutMs: number
}

/** Where an SQS namespace's log lives: its shard queues (`<queue>-<i>`, `.fifo` for FIFO) and their DLQ. */
export interface SqsLogSettings {
  cluster: SqsClusterSettings
  queue: string
  fifo: boolean
  shards: number
  /** Receives before SQS itself moves a message to the DLQ (redrive policy, set by ns init). */
  maxReceiveCount: number
  /** How long a received message stays hidden from other consumers; extended while an apply runs. */
  visibilityTimeoutSeconds: number
  /** The longest DelaySeconds (or visibility wait) wal asks for at once; longer delays are re-scheduled. */
  maxNativeDelaySeconds: number
}

/** A table a Cassandra target declares. */
export interface CassandraTableDeclaration {
  columns: Record<string, string>
  partitionKey: string[]
  clusteringKey?: string[]
}

/** A Cassandra cluster's settings, certificate paths resolved. */
export interface CassandraClusterSettings {
  name: string
  contactPoints: string[]
  localDataCenter: string
  /** The keyspace of targets that name none; null if there is no default. */
  keyspace: string | null
  auth: { username: string; password: string } | null
  tls: boolean | { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean }
  connectTimeoutMs: number
}

/** The effective settings of one target, namespace and global defaults applied. */
export type TargetSettings = (
  | { type: 'kv'; path: string }
  | { type: 'http'; url: string; method: 'POST' | 'PUT'; body: 'payload' | 'envelope'; timeoutMs: number; headers: Record<string, string> }
  | { type: 'file'; path: string }
  | { type: 'kafka'; topic: string; timeoutMs: number; cluster: KafkaClusterSettings; compression: Compression; partitioner: 'murmur2' | 'consistent_random' }
  | { type: 'sqs'; queue: string; fifo: boolean; cluster: SqsClusterSettings }
  | {
      type: 'cassandra'
      cluster: CassandraClusterSettings
      keyspace: string
      consistency: ConsistencyLevel
      /** Requests in flight at most (the consumer's --concurrency wins when given). */
      concurrency: number
      timeoutMs: number
      /** A batch whose statements are larger than this is applied part by part instead of as one logged batch. */
      maxBatchBytes: number
      /** Delayed deletes are spread over this much more time (0: none). */
      deleteJitterMs: number
      /** Replication for `ns init` to create the keyspace with; null: ns init does not create it. */
      replication: Record<string, string | number> | null
      /** Declared tables: checked at consumer start, created by `ns init`. */
      tables: Record<string, CassandraTableDeclaration>
    }
) & {
  name: string
  retry: RetryPolicy
  /** Applies per second at most; null for no limit. */
  ratePerSec: number | null
}

/** Where a Kafka namespace's log lives, and how `wal ns init` creates its topics. */
export interface KafkaLogSettings {
  cluster: KafkaClusterSettings
  topic: string
  /** For `ns init`; null: as many replicas as brokers, at most 3. */
  replicationFactor: number | null
  /** For `ns init`; null: the broker's default. */
  retentionMs: number | null
  /** How keys map to partitions: as Kafka's Java client (murmur2) or as librdkafka (consistent_random, CRC32). */
  partitioner: 'murmur2' | 'consistent_random'
  /** How record batches are compressed: none, gzip, snappy, lz4 or zstd. */
  compression: Compression
}

/** The effective settings of one namespace, defaults applied. */
export interface NamespaceSettings {
  name: string
  backend: 'embedded' | 'kafka' | 'sqs'
  /** Set for Kafka namespaces. */
  kafka: KafkaLogSettings | null
  /** Set for SQS namespaces. */
  sqs: SqsLogSettings | null
  partitions: number
  maxPayloadBytes: number
  /** A transaction without its marker this long after its first part is aborted. */
  txnTimeoutMs: number
  description: string | null
  /** Whether the config file names it (false: created on demand in zero-config mode). */
  declared: boolean
  /** Where consumers apply its mutations. A namespace not in the config gets one kv target, "kv". */
  targets: TargetSettings[]
  /** Applies per second at most, over all its targets; null for no limit. */
  ratePerSec: number | null
}

/** The effective configuration. */
export interface ResolvedConfig {
  /** The file it came from; null when wal runs with no config file. */
  path: string | null
  stateDir: string
  autoCreateNamespaces: boolean
  defaults: { partitions: number; maxPayloadBytes: number; txnTimeoutMs: number; retry: RetryPolicy }
  /** Declared namespaces, by name. */
  namespaces: ReadonlyMap<string, NamespaceSettings>
  /** `wal daemon`'s settings. */
  daemon: DaemonSettings
  /** The names of the contexts the file declares (`contexts:`). */
  contexts: string[]
  /** The context in use, merged over the file; null for none. */
  context: string | null
  /** Where the context in use was chosen: --context, WAL_CONTEXT, `wal config use-context`, or none. */
  contextSource: 'flag' | 'env' | 'use-context' | null
  /** The namespace of commands given no -n: WAL_NAMESPACE, else the file's defaultNamespace, else "default". */
  defaultNamespace: string
  /** Declared namespaces whose mutations nothing applies (`targets: []`), for `wal config validate`. */
  warnings: string[]
}
