/**
 * `wal ns init`: creates what a namespace needs and reports what exists. Embedded: the log file. Kafka:
 * the log topic (partitions, replication, retention), its DLQ topic, and the topics that hold consumer
 * state (schedule, history, DLQ marks). Cassandra targets: the keyspace and the declared tables. Existing topics are left as they are; a partition count that
 * differs from the config is reported, since changing it would move keys between partitions.
 */
import { loadConfig, namespaceSettings } from '../config/load.js'
import type { NamespaceSettings } from '../config/schema.js'
import { ConfigError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import { EmbeddedLog } from '../log/embedded/embedded-log.js'
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
  /** With --allow-remap: the partition or shard count changed from → to (keys re-mapped). */
  remapped?: { from: number; to: number }
}

/** What a change of a namespace's partition or shard count does to order, and how to make it safely. */
export function remapRefused(namespace: string, what: string, from: number, to: number, exists: string, keepSetting: string): ConfigError {
  return new ConfigError(
    `namespace "${namespace}": the config asks for ${to} ${what}, ${exists} has ${from}: changing it re-maps keys to other ${what}, so a key's mutations written before the change may be applied after ones written after it (per-key order across the change is lost)`,
    {
      code: 'WAL_NAMESPACE_REMAP',
      details: { namespace, stored: from, configured: to },
      suggestions: [
        `to keep per-key order, drain first: stop the producers of "${namespace}", run wal consume -n ${namespace} --until-idle (or wait until wal ns show ${namespace} shows lag 0 for every target), stop its consumers, then run wal ns init ${namespace} --allow-remap and restart them`,
        `or keep the current count: set ${keepSetting}: ${from} for namespace "${namespace}"`,
      ],
    },
  )
}

export interface NamespaceInit {
  namespace: string
  backend: string
  parts: InitializedPart[]
}

/**
 * `allowRemap`: a partition (embedded) or shard (SQS) count that differs from what exists is changed,
 * and reported; without it, such a change is refused (exit 3) with what order is lost and how to drain.
 */
export async function initNamespace(options: CommonOptions & { namespace?: string; allowRemap?: boolean }): Promise<NamespaceInit> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const settings = namespaceSettings(config, options.namespace)
  let parts: InitializedPart[]
  if (settings.backend === 'kafka') {
    const { initKafkaNamespace } = await import('../log/kafka/init.js')
    parts = await initKafkaNamespace(settings)
  } else if (settings.backend === 'sqs') {
    const { initSqsNamespace } = await import('../log/sqs/init.js')
    parts = await initSqsNamespace(settings, options.allowRemap ?? false)
  } else parts = [await initEmbedded(config, settings, options.allowRemap ?? false)]
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

async function initEmbedded(config: Awaited<ReturnType<typeof loadConfig>>, settings: NamespaceSettings, allowRemap: boolean): Promise<InitializedPart> {
  let existed = true
  let log
  try {
    // Opened as a reader: an existing log keeps its partition count until the change is allowed below.
    log = await openLog(config, settings, { create: false })
  } catch {
    existed = false
    log = await openLog(config, settings, { create: true })
  }
  try {
    const info = await log.info()
    const part: InitializedPart = { role: 'log', name: info.location, status: existed ? 'exists' : 'created', partitions: log.partitions, replicationFactor: null }
    if (log.partitions !== settings.partitions) {
      if (!allowRemap) throw remapRefused(settings.name, 'partitions', log.partitions, settings.partitions, 'its embedded log', 'partitions')
      const from = log.partitions
      ;(log as EmbeddedLog).repartition(settings.partitions)
      part.partitions = settings.partitions
      part.remapped = { from, to: settings.partitions }
      part.warning = `now has ${settings.partitions} partitions (was ${from}): keys were re-mapped, so per-key order holds only among mutations written after the change`
    }
    return part
  } finally {
    await log.close()
  }
}
