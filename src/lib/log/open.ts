/**
 * Opens the log that holds a namespace. Each backend's module is imported only here and only when a
 * namespace uses it, so commands on the embedded log never load a broker SDK.
 */
import type { NamespaceSettings, ResolvedConfig } from '../config/schema.js'
import type { LogBackend } from './backend.js'

export interface OpenLogOptions {
  /** Create the log when it does not exist yet (writers); readers get a NotFoundError instead. */
  create: boolean
}

export async function openLog(config: ResolvedConfig, settings: NamespaceSettings, options: OpenLogOptions): Promise<LogBackend> {
  switch (settings.backend) {
    case 'embedded': {
      const { EmbeddedLog } = await import('./embedded/embedded-log.js')
      return EmbeddedLog.open({
        stateDir: config.stateDir,
        namespace: settings.name,
        partitions: settings.partitions,
        create: options.create,
      })
    }
  }
}

/** Namespaces that have a log in the state directory, whether declared or not. */
export async function listLogs(config: ResolvedConfig): Promise<string[]> {
  const { listEmbeddedLogs } = await import('./embedded/embedded-log.js')
  return listEmbeddedLogs(config.stateDir)
}
