/**
 * Creating and checking topics, for `wal ns init` (a namespace's topics, a Kafka target's topic) and a
 * Kafka target's start. A new topic's partitions have no leader for a moment, longer on a busy broker or
 * one with many partitions; creation waits for every leader, with bounded retries, so what `ns init`
 * reports as created can be written at once.
 */
import { BackendUnavailableError } from '../errors.js'
import { kafkaFault, rootKafkaError, TRANSIENT_WAIT_MS } from './client.js'

type Admin = import('kafkajs').Admin

export interface TopicSpec {
  name: string
  partitions: number
  replicationFactor: number
  configEntries?: Array<{ name: string; value: string }>
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether a failure may pass by itself while a topic is being created (metadata not yet everywhere). */
function passing(error: unknown): boolean {
  return kafkaFault(error) === 'transient' || rootKafkaError(error).type === 'UNKNOWN_TOPIC_OR_PARTITION'
}

/** Partitions of a topic, or null when it does not exist. Transient states are waited out. */
export async function topicPartitions(admin: Admin, topic: string, waitMs = TRANSIENT_WAIT_MS): Promise<Array<{ partitionId: number; leader: number }> | null> {
  const deadline = Date.now() + waitMs
  for (let attempt = 0; ; attempt++) {
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
      return topics[0]?.partitions ?? null
    } catch (error) {
      if (rootKafkaError(error).type === 'UNKNOWN_TOPIC_OR_PARTITION') return null
      if (kafkaFault(error) !== 'transient' || Date.now() >= deadline) throw error
      await sleep(Math.min(2000, 100 * 2 ** attempt))
    }
  }
}

/**
 * Creates a topic (one that exists meanwhile counts as created) and waits until every partition has a
 * leader. Throws kafkajs's error for what is not transient, and a BackendUnavailableError (exit 5) when
 * leaders do not show up within `waitMs`.
 */
export async function createTopic(admin: Admin, spec: TopicSpec, waitMs = TRANSIENT_WAIT_MS): Promise<void> {
  const deadline = Date.now() + waitMs
  for (let attempt = 0; ; attempt++) {
    try {
      // kafkajs's own wait for leaders gives up on the first metadata that lacks the topic: waited below.
      await admin.createTopics({
        waitForLeaders: false,
        topics: [{ topic: spec.name, numPartitions: spec.partitions, replicationFactor: spec.replicationFactor, configEntries: spec.configEntries ?? [] }],
      })
      break
    } catch (error) {
      const type = rootKafkaError(error).type
      if (type === 'TOPIC_ALREADY_EXISTS') break
      if (!passing(error) || Date.now() >= deadline) throw error
      await sleep(Math.min(2000, 100 * 2 ** attempt))
    }
  }
  for (let attempt = 0; ; attempt++) {
    let partitions: Array<{ partitionId: number; leader: number }> | null = null
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [spec.name] })
      partitions = topics[0]?.partitions ?? null
    } catch (error) {
      if (!passing(error)) throw error
    }
    if (partitions !== null && partitions.length >= spec.partitions && partitions.every((p) => p.leader >= 0)) return
    if (Date.now() >= deadline) {
      throw new BackendUnavailableError(`topic "${spec.name}" was created, but its partitions have no leader after ${Math.round(waitMs / 1000)} s`, {
        code: 'WAL_KAFKA_LEADER_NOT_AVAILABLE',
        suggestions: ['the brokers are slow to elect leaders (busy, or many partitions): run `wal ns init` again in a moment; it keeps what exists'],
      })
    }
    await sleep(Math.min(1000, 50 * 2 ** attempt))
  }
}
