/** The queues of an SQS namespace: one per shard, and one DLQ they all redrive to. */
import type { SqsLogSettings } from '../../config/schema.js'
import type { ShardRequest } from '../backend.js'

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

/** The shard queues a consumer takes: all of them for `auto` (consumers share a queue by themselves), else i % N == I. */
export function shardQueues(shard: ShardRequest, queues: number): number[] {
  const all = Array.from({ length: queues }, (_, i) => i)
  return shard === 'auto' ? all : all.filter((i) => i % shard.count === shard.index)
}
