/**
 * An SQS namespace for a test: a config naming fresh queues on the test ElasticMQ, `wal ns init` run on
 * it, and its queues deleted afterwards. Also a plain @aws-sdk/client-sqs client, for interop checks.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DeleteQueueCommand, GetQueueUrlCommand, ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs'

import { endpoints } from '../../scripts/services/endpoints.js'
import type { Sandbox } from './wal.js'

export const testSqs = new SQSClient({
  endpoint: endpoints.sqs.endpoint,
  region: endpoints.sqs.region,
  // A copy: the SDK marks the object it is given.
  credentials: { ...endpoints.sqs.credentials },
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 2000, requestTimeout: 15_000 },
})

export interface SqsNamespaceOptions {
  shards?: number
  fifo?: boolean
  targets?: Record<string, unknown>
  retry?: Record<string, unknown>
  /** More namespace settings (maxReceiveCount, maxNativeDelaySeconds, …). */
  settings?: Record<string, unknown>
  /** Overrides the endpoint (e.g. a Toxiproxy in front of ElasticMQ). */
  endpoint?: string
  /** More cluster settings (timeouts). */
  cluster?: Record<string, unknown>
  /** More namespaces for the same config. */
  extra?: Record<string, unknown>
}

/** Writes the sandbox's config with namespace "orders" on new queues, runs `ns init`; returns the queue prefix. */
export async function sqsNamespace(wal: Sandbox, options: SqsNamespaceOptions = {}): Promise<string> {
  const queue = `wal-${randomBytes(5).toString('hex')}`
  writeSqsConfig(wal, queue, options)
  const init = await wal.run(['ns', 'init', 'orders'])
  if (init.code !== 0) throw new Error(`ns init failed: ${init.stderr}`)
  return queue
}

export function writeSqsConfig(wal: Sandbox, queue: string, options: SqsNamespaceOptions = {}): void {
  writeFileSync(
    join(wal.cwd, '.walrc.json'),
    JSON.stringify({
      clusters: {
        sqs: {
          test: { region: endpoints.sqs.region, endpoint: options.endpoint ?? endpoints.sqs.endpoint, accessKeyId: endpoints.sqs.credentials.accessKeyId, secretAccessKey: endpoints.sqs.credentials.secretAccessKey, connectionTimeoutMs: 1000, requestTimeoutMs: 15_000, ...options.cluster },
        },
      },
      namespaces: {
        orders: {
          backend: 'sqs',
          cluster: 'test',
          queue,
          shards: options.shards ?? 1,
          ...(options.fifo ? { fifo: true } : {}),
          targets: options.targets ?? { kv: { type: 'kv' } },
          ...(options.retry ? { retry: options.retry } : {}),
          ...options.settings,
        },
        ...options.extra,
      },
    }),
  )
}

export async function queueUrl(name: string): Promise<string> {
  return (await testSqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!
}

/** Deletes every queue whose name starts with one of the prefixes. */
export async function deleteQueues(prefixes: readonly string[]): Promise<void> {
  for (const prefix of prefixes) {
    const { QueueUrls = [] } = await testSqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix })).catch(() => ({ QueueUrls: [] }))
    await Promise.all(QueueUrls.map((QueueUrl) => testSqs.send(new DeleteQueueCommand({ QueueUrl })).catch(() => undefined)))
  }
}
