/** Creates a target from its settings. SDK-backed targets (Kafka, Cassandra) import their SDK only when used. */
import type { TargetSettings } from '../config/schema.js'
import type { Target } from './target.js'
import { FileTarget } from './file/file-target.js'
import { HttpTarget } from './http/http-target.js'
import { KafkaTarget } from './kafka/kafka-target.js'
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
      return new HttpTarget({ name: settings.name, url: settings.url, method: settings.method, body: settings.body, timeoutMs: settings.timeoutMs, headers: settings.headers })
    }
    case 'file': {
      return new FileTarget({ name: settings.name, path: settings.path })
    }
    case 'kafka': {
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
