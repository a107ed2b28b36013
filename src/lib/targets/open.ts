/**
 * Creates a target from its settings. Each target's code (and its SDK, for Kafka, SQS and Cassandra) is
 * imported only when a namespace uses it: the embedded targets (kv, file) are the only ones loaded
 * up front, and a consume to them loads no network client.
 */
import type { TargetSettings } from '../config/schema.js'
import type { Target } from './target.js'
import { FileTarget } from './file/file-target.js'
import { KvTarget } from './kv/kv-target.js'

/** How the consumer runs the target: `concurrency` is its applies at once (--concurrency, daemon.concurrency or the target's own). */
export interface OpenOptions {
  concurrency?: number
}

export async function openTarget(settings: TargetSettings, options: OpenOptions = {}): Promise<Target> {
  switch (settings.type) {
    case 'kv': {
      return KvTarget.open({ name: settings.name, path: settings.path })
    }
    case 'http': {
      const { HttpTarget } = await import('./http/http-target.js')
      return new HttpTarget({ name: settings.name, url: settings.url, method: settings.method, body: settings.body, timeoutMs: settings.timeoutMs, headers: settings.headers })
    }
    case 'file': {
      return new FileTarget({ name: settings.name, path: settings.path })
    }
    case 'kafka': {
      const { KafkaTarget } = await import('./kafka/kafka-target.js')
      return KafkaTarget.open({ name: settings.name, topic: settings.topic, timeoutMs: settings.timeoutMs, cluster: settings.cluster, compression: settings.compression, partitioner: settings.partitioner })
    }
    case 'sqs': {
      const { SqsTarget } = await import('./sqs/sqs-target.js')
      return new SqsTarget({ name: settings.name, queue: settings.queue, fifo: settings.fifo, cluster: settings.cluster })
    }
    case 'cassandra': {
      // Its own chunk: the Cassandra code loads only for namespaces that use it.
      const { CassandraTarget } = await import('./cassandra/cassandra-target.js')
      return CassandraTarget.open({
        name: settings.name,
        cluster: settings.cluster,
        keyspace: settings.keyspace,
        consistency: settings.consistency,
        concurrency: options.concurrency ?? settings.concurrency,
        timeoutMs: settings.timeoutMs,
        maxBatchBytes: settings.maxBatchBytes,
        deleteJitterMs: settings.deleteJitterMs,
        tables: settings.tables,
        where: `target "${settings.name}"`,
      })
    }
  }
}
