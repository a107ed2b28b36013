/** The queues of an SQS namespace: one per shard, and one DLQ they all redrive to. */
import type { SqsLogSettings } from '../../config/schema.js'

export interface NamespaceQueues {
  /** Shard i's queue name. */
  shards: string[]
  dlq: string
}

export function namespaceQueues(settings: SqsLogSettings): NamespaceQueues {
  const suffix = settings.fifo ? '.fifo' : ''
  const base = settings.queue
  return {
    shards: Array.from({ length: settings.shards }, (_, i) => (settings.shards === 1 ? `${base}${suffix}` : `${base}-${i}${suffix}`)),
    dlq: `${base}-dlq${suffix}`,
  }
}
