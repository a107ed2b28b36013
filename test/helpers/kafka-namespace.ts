/**
 * A Kafka namespace for a test: a config naming a fresh topic on the test broker, `wal ns init` run on
 * it, and its topics deleted afterwards.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Kafka, logLevel } from 'kafkajs'

import { endpoints } from '../../scripts/services/endpoints.js'
import type { Sandbox } from './wal.js'

export const testKafka = new Kafka({ clientId: 'wal-test', brokers: endpoints.kafka.brokers, logLevel: logLevel.NOTHING })

export interface KafkaNamespaceOptions {
  partitions?: number
  targets?: Record<string, unknown>
  retry?: Record<string, unknown>
  cluster?: Record<string, unknown>
  /** More settings of the namespace (maxPayloadBytes, …). */
  settings?: Record<string, unknown>
  /** The namespace's compression (none, gzip, snappy, lz4, zstd). */
  compression?: string
  /** More namespaces for the same config (embedded or Kafka). */
  extra?: Record<string, unknown>
}

/** Writes the sandbox's config with namespace "orders" on a new topic, runs `ns init`; returns the topic. */
export async function kafkaNamespace(wal: Sandbox, options: KafkaNamespaceOptions = {}): Promise<string> {
  const topic = `wal-log-${randomBytes(4).toString('hex')}`
  writeFileSync(
    join(wal.cwd, '.walrc.json'),
    JSON.stringify({
      clusters: { kafka: { test: options.cluster ?? { brokers: endpoints.kafka.brokers } } },
      namespaces: {
        orders: {
          backend: 'kafka',
          cluster: 'test',
          topic,
          partitions: options.partitions ?? 4,
          targets: options.targets ?? { kv: { type: 'kv' } },
          ...(options.retry ? { retry: options.retry } : {}),
          ...options.settings,
          ...(options.compression ? { compression: options.compression } : {}),
        },
        ...options.extra,
      },
    }),
  )
  const init = await wal.run(['ns', 'init', 'orders'])
  if (init.code !== 0) throw new Error(`ns init failed: ${init.stderr}`)
  return topic
}

/** Deletes the topics of namespaces made by kafkaNamespace. */
export async function deleteTopics(topics: readonly string[]): Promise<void> {
  if (topics.length === 0) return
  const admin = testKafka.admin()
  await admin.connect()
  try {
    const existing = await admin.listTopics()
    const doomed = existing.filter((t) => topics.some((topic) => t === topic || t.startsWith(`${topic}.`)))
    if (doomed.length > 0) await admin.deleteTopics({ topics: doomed }).catch(() => undefined)
  } finally {
    await admin.disconnect()
  }
}
