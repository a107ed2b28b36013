/**
 * Opens the log that holds a namespace. Backends that need a broker SDK import it inside their adapter,
 * only when a namespace uses them, so commands on the embedded log never load one.
 */
import type { NamespaceSettings, ResolvedConfig } from '../config/schema.js'
import type { LogBackend } from './backend.js'
import { EmbeddedLog, listEmbeddedLogs } from './embedded/embedded-log.js'

export interface OpenLogOptions {
  /** Create the log when it does not exist yet (writers); readers get a NotFoundError instead. */
  create: boolean
}

export async function openLog(config: ResolvedConfig, settings: NamespaceSettings, options: OpenLogOptions): Promise<LogBackend> {
  switch (settings.backend) {
    case 'embedded': {
      return EmbeddedLog.open({
        stateDir: config.stateDir,
        namespace: settings.name,
        partitions: settings.partitions,
        create: options.create,
        txnTimeoutMs: settings.txnTimeoutMs,
      })
    }
    case 'kafka': {
      // Topics are created by `wal ns init`, never on a first write: their partitions and replication matter.
      const { KafkaLog } = await import('./kafka/kafka-log.js')
      return KafkaLog.open(settings, { write: options.create })
    }
    case 'sqs': {
      // Queues too are created by `wal ns init`: their redrive policy and FIFO-ness matter.
      const { SqsLog } = await import('./sqs/sqs-log.js')
      return SqsLog.open(settings, { stateDir: config.stateDir })
    }
  }
}

/** Namespaces that have a log in the state directory, whether declared or not. */
export async function listLogs(config: ResolvedConfig): Promise<string[]> {
  const kafka = [...config.namespaces.values()].filter((ns) => ns.backend !== 'embedded').map((ns) => ns.name)
  return [...new Set([...listEmbeddedLogs(config.stateDir), ...kafka])].sort()
}
