/**
 * `wal ns init`: creates what a namespace needs and reports what exists. Embedded: the log file. Kafka:
 * the log topic (partitions, replication, retention), its DLQ topic, and the topics that hold consumer
 * state (schedule, history, DLQ marks). Cassandra targets: the keyspace and the declared tables. Existing topics are left as they are; a partition count that
 * differs from the config is reported, since changing it would move keys between partitions.
 */
import { loadConfig, namespaceSettings } from '../config/load.js'
import type { NamespaceSettings } from '../config/schema.js'
import type { CommonOptions } from '../io/context.js'
import { openLog } from '../log/open.js'

export interface InitializedPart {
  /** What it is for: log, dlq, schedule, history, state. */
  role: string
  name: string
  status: 'created' | 'exists'
  partitions: number | null
  replicationFactor: number | null
  /** Where what exists differs from the config. */
  warning?: string
}

export interface NamespaceInit {
  namespace: string
  backend: string
  parts: InitializedPart[]
}

export async function initNamespace(options: CommonOptions & { namespace?: string }): Promise<NamespaceInit> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const settings = namespaceSettings(config, options.namespace)
  let parts: InitializedPart[]
  if (settings.backend === 'kafka') {
    const { initKafkaNamespace } = await import('../log/kafka/init.js')
    parts = await initKafkaNamespace(settings)
  } else if (settings.backend === 'sqs') {
    const { initSqsNamespace } = await import('../log/sqs/init.js')
    parts = await initSqsNamespace(settings)
  } else parts = [await initEmbedded(config, settings)]
  if (settings.targets.some((t) => t.type === 'kafka')) {
    const { initKafkaTargets } = await import('../targets/kafka/init.js')
    const log = parts.find((p) => p.role === 'log')
    parts.push(...(await initKafkaTargets(settings, log?.partitions ?? settings.partitions)))
  }
  if (settings.targets.some((t) => t.type === 'cassandra')) {
    // Its own chunk: cassandra-driver loads only for namespaces with a Cassandra target.
    const { initCassandraTargets } = await import('../targets/cassandra/init.js')
    parts.push(...(await initCassandraTargets(settings)))
  }
  return { namespace: settings.name, backend: settings.backend, parts }
}

async function initEmbedded(config: Awaited<ReturnType<typeof loadConfig>>, settings: NamespaceSettings): Promise<InitializedPart> {
  let existed = true
  let log
  try {
    log = await openLog(config, settings, { create: false })
  } catch {
    existed = false
    log = await openLog(config, settings, { create: true })
  }
  try {
    const info = await log.info()
    return { role: 'log', name: info.location, status: existed ? 'exists' : 'created', partitions: log.partitions, replicationFactor: null }
  } finally {
    await log.close()
  }
}
