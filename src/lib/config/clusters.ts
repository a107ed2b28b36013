/**
 * The clusters a config declares under `clusters.kafka`, `clusters.sqs` and `clusters.cassandra`, resolved
 * for the namespace or target that names one: defaults applied, certificate paths made absolute
 * (relative to the config file), and a clear error for a name that is not declared.
 */
import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'

import { ConfigError } from '../errors.js'
import { DEFAULTS, type CassandraClusterSettings, type ConfigFile, type KafkaClusterSettings, type SqsClusterSettings } from './schema.js'

export function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path
}

type Kind = 'kafka' | 'sqs' | 'cassandra'
const LABEL: Record<Kind, string> = { kafka: 'Kafka', sqs: 'SQS', cassandra: 'Cassandra' }
const EXAMPLE: Record<Kind, string> = {
  kafka: 'declare it: clusters: { kafka: { NAME: { brokers: [host:port] } } }',
  sqs: 'declare it: clusters: { sqs: { NAME: { region: us-east-1 } } }',
  cassandra: 'declare it: clusters: { cassandra: { NAME: { contactPoints: [host:port], localDataCenter: DC } } }',
}

/** The cluster `name` under `clusters.<kind>`, or an error listing the declared ones. */
function declared<K extends Kind>(file: ConfigFile, kind: K, name: string, where: string): NonNullable<NonNullable<ConfigFile['clusters']>[K]>[string] {
  const clusters = (file.clusters?.[kind] ?? {}) as Record<string, NonNullable<NonNullable<ConfigFile['clusters']>[K]>[string]>
  const cluster = clusters[name]
  if (cluster) return cluster
  const names = Object.keys(clusters)
  throw new ConfigError(`${where}: cluster "${name}" is not declared under clusters.${kind}`, {
    suggestions: [names.length > 0 ? `declared ${LABEL[kind]} clusters: ${names.join(', ')}` : EXAMPLE[kind]],
  })
}

type Tls = boolean | { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean }

/** TLS settings with their PEM files resolved against the config file's folder. */
function tlsFiles(tls: Tls | undefined, base: string): Tls {
  if (typeof tls !== 'object') return tls ?? false
  const path = (p: string | undefined): string | undefined => (p === undefined ? undefined : isAbsolute(expandHome(p)) ? expandHome(p) : resolve(base, p))
  return { ...tls, ca: path(tls.ca), cert: path(tls.cert), key: path(tls.key) }
}

export function kafkaCluster(file: ConfigFile, name: string, where: string, base: string): KafkaClusterSettings {
  const cluster = declared(file, 'kafka', name, where)
  return {
    name,
    brokers: cluster.brokers,
    clientId: cluster.clientId ?? 'wal',
    ssl: tlsFiles(cluster.ssl, base),
    sasl: cluster.sasl ?? null,
    connectionTimeoutMs: cluster.connectionTimeoutMs ?? 10_000,
    deliveryTimeoutMs: cluster.deliveryTimeoutMs ?? 30_000,
  }
}

export function sqsCluster(file: ConfigFile, name: string, where: string): SqsClusterSettings {
  const cluster = declared(file, 'sqs', name, where)
  if ((cluster.accessKeyId === undefined) !== (cluster.secretAccessKey === undefined)) {
    throw new ConfigError(`${where}: cluster "${name}" needs both accessKeyId and secretAccessKey, or neither (then the profile or the AWS default chain is used)`, {
      suggestions: [`set both under clusters.sqs.${name}, or remove them`],
    })
  }
  return {
    name,
    region: cluster.region,
    endpoint: cluster.endpoint ?? null,
    profile: cluster.profile ?? null,
    credentials:
      cluster.accessKeyId === undefined
        ? null
        : { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey!, ...(cluster.sessionToken ? { sessionToken: cluster.sessionToken } : {}) },
    requestTimeoutMs: cluster.requestTimeoutMs ?? 30_000,
    connectionTimeoutMs: cluster.connectionTimeoutMs ?? 5_000,
  }
}

export function cassandraCluster(file: ConfigFile, name: string, where: string, base: string): CassandraClusterSettings {
  const cluster = declared(file, 'cassandra', name, where)
  return {
    name,
    contactPoints: cluster.contactPoints,
    localDataCenter: cluster.localDataCenter,
    keyspace: cluster.keyspace ?? null,
    auth: cluster.auth ?? null,
    tls: tlsFiles(cluster.tls, base),
    connectTimeoutMs: cluster.connectTimeoutMs ?? DEFAULTS.cassandra.connectTimeoutMs,
  }
}
