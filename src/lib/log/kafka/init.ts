/** Creates a Kafka namespace's topics (see topics.ts), leaving those that exist as they are. */
import type { NamespaceSettings } from '../../config/schema.js'
import type { InitializedPart } from '../../ns/init.js'
import { createTopic } from '../../kafka/topics.js'
import { KafkaConnection } from './connection.js'
import { HISTORY_RETENTION_MS, namespaceTopics } from './topics.js'

interface TopicPlan {
  role: string
  name: string
  partitions: number
  configEntries: Array<{ name: string; value: string }>
}

/**
 * The compacted topics (schedule, state): consumers read them whole at start and the state topic at every
 * heartbeat, and they gain records with every delay, skip and transaction. Kafka compacts only rolled
 * segments (7 days by default), so they roll hourly: what was overwritten or deleted goes within hours.
 */
const COMPACTED = [
  { name: 'cleanup.policy', value: 'compact' },
  { name: 'segment.ms', value: String(60 * 60 * 1000) },
]

export async function initKafkaNamespace(settings: NamespaceSettings): Promise<InitializedPart[]> {
  const kafka = settings.kafka!
  const connection = await KafkaConnection.open(kafka)
  try {
    const { admin } = connection
    const topics = namespaceTopics(kafka.topic)
    const existing = await connection.partitionCount(topics.log)
    // The state topics follow the log's partitions: the log's if it exists, else the config's.
    const partitions = existing ?? settings.partitions
    const brokers = (await connection.adminCall((a) => a.describeCluster())).brokers.length
    const replicationFactor = kafka.replicationFactor ?? Math.min(3, brokers)
    const retention = kafka.retentionMs === null ? [] : [{ name: 'retention.ms', value: String(kafka.retentionMs) }]
    const plans: TopicPlan[] = [
      { role: 'log', name: topics.log, partitions: settings.partitions, configEntries: retention },
      // Dead letters stay until replayed or purged.
      { role: 'dlq', name: topics.dlq, partitions: 1, configEntries: [{ name: 'retention.ms', value: '-1' }] },
      { role: 'schedule', name: topics.schedule, partitions, configEntries: COMPACTED },
      { role: 'history', name: topics.history, partitions, configEntries: [{ name: 'retention.ms', value: String(HISTORY_RETENTION_MS) }] },
      { role: 'state', name: topics.state, partitions: 1, configEntries: COMPACTED },
    ]
    const parts: InitializedPart[] = []
    for (const plan of plans) {
      const found = await connection.partitionCount(plan.name)
      if (found !== null) {
        const part: InitializedPart = { role: plan.role, name: plan.name, status: 'exists', partitions: found, replicationFactor: null }
        if (plan.role === 'log' && found !== settings.partitions) {
          part.warning = `has ${found} partitions, the config says ${settings.partitions}; wal uses the topic's (changing them would move keys between partitions)`
        }
        parts.push(part)
        continue
      }
      try {
        await createTopic(admin, { name: plan.name, partitions: plan.partitions, replicationFactor, configEntries: plan.configEntries })
      } catch (error) {
        throw connection.error(error)
      }
      parts.push({ role: plan.role, name: plan.name, status: 'created', partitions: plan.partitions, replicationFactor })
    }
    return parts
  } finally {
    await connection.close()
  }
}
