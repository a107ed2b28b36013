/**
 * `wal ns init` for a namespace's Kafka targets: creates each target's topic when missing (with as many
 * partitions as the namespace's log, so a key keeps its partition number on the other side), and reports
 * those that exist. A target's cluster may be another than the log's.
 */
import type { NamespaceSettings, TargetSettings } from '../../config/schema.js'
import { describeKafkaError, kafkaClientConfig, loadKafkajs } from '../../kafka/client.js'
import { createTopic, topicPartitions } from '../../kafka/topics.js'
import type { InitializedPart } from '../../ns/init.js'

type KafkaTargetSettings = Extract<TargetSettings, { type: 'kafka' }>

export async function initKafkaTargets(settings: NamespaceSettings, partitions: number): Promise<InitializedPart[]> {
  const kafkajs = await loadKafkajs()
  const parts: InitializedPart[] = []
  for (const target of settings.targets.filter((t): t is KafkaTargetSettings => t.type === 'kafka')) {
    const admin = new kafkajs.Kafka(kafkaClientConfig(target.cluster, kafkajs)).admin()
    try {
      await admin.connect()
      const found = await topicPartitions(admin, target.topic)
      if (found !== null) {
        parts.push({ role: `target ${target.name}`, name: target.topic, status: 'exists', partitions: found.length, replicationFactor: null })
        continue
      }
      const replicationFactor = Math.min(3, (await admin.describeCluster()).brokers.length)
      await createTopic(admin, { name: target.topic, partitions, replicationFactor })
      parts.push({ role: `target ${target.name}`, name: target.topic, status: 'created', partitions, replicationFactor })
    } catch (error) {
      throw describeKafkaError(target.cluster, error, { topic: target.topic })
    } finally {
      await admin.disconnect().catch(() => undefined)
    }
  }
  return parts
}
