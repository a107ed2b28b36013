/** `wal ns ls|show`: the namespaces, their settings and the state of their logs. */
import { loadConfig, namespaceSettings } from '../config/load.js'
import type { NamespaceSettings, ResolvedConfig } from '../config/schema.js'
import { redactSecrets } from '../config/redact.js'
import { ExitCode, NotFoundError, WalError } from '../errors.js'
import type { CommonOptions } from '../io/context.js'
import type { LogInfo, PartitionMark } from '../log/backend.js'
import { listLogs, openLog } from '../log/open.js'

export interface NamespaceSummary {
  name: string
  backend: string
  partitions: number
  declared: boolean
  description: string | null
  /** Mutations in the log; null when the log does not exist yet or cannot be reached. */
  records: number | null
  /** Why the log could not be read (a cluster that is down), when it could not. */
  unavailable?: string
}

/** A target's consumer state: who holds which partition, how far it got, what waits. */
export interface TargetConsumerState {
  target: string
  type: string
  /** Mutations not yet committed by this target, over all partitions. */
  lag: number
  committed: Array<{ partition: number; offset: number; lag: number }>
  leases: Array<{ partition: number; owner: string; expiresAt: string }>
  scheduled: number
  deadLetters: number
}

export interface NamespaceDetails extends NamespaceSummary {
  settings: NamespaceSettings
  log: LogInfo | null
  marks: PartitionMark[]
  consumers: TargetConsumerState[]
}

async function namespaceNames(config: ResolvedConfig): Promise<string[]> {
  const names = new Set(config.namespaces.keys())
  if (config.autoCreateNamespaces) {
    names.add('default')
    for (const name of await listLogs(config)) names.add(name)
  }
  return [...names].sort()
}

/** Settings as shown: cluster passwords are not. */
function redactedSettings(settings: NamespaceSettings): NamespaceSettings {
  return redactSecrets(settings) as NamespaceSettings
}

async function describe(config: ResolvedConfig, name: string): Promise<NamespaceDetails> {
  const settings = namespaceSettings(config, name)
  const summary = { name, backend: settings.backend, declared: settings.declared, description: settings.description }
  let log
  try {
    log = await openLog(config, settings, { create: false })
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error
    return { ...summary, partitions: settings.partitions, records: null, settings: redactedSettings(settings), log: null, marks: [], consumers: [] }
  }
  try {
    const info = await log.info()
    const marks = await log.marks()
    const consumers: TargetConsumerState[] = []
    for (const target of settings.targets) {
      const store = await log.consumerStore(target.name)
      try {
        const committed = await store.committed(marks.map((m) => m.partition))
        const offsets = marks.map((m) => ({ partition: m.partition, offset: committed.get(m.partition)!, lag: m.high - committed.get(m.partition)! }))
        consumers.push({
          target: target.name,
          type: target.type,
          lag: offsets.reduce((n, o) => n + o.lag, 0),
          committed: offsets,
          leases: (await store.leases()).map((l) => ({ partition: l.partition, owner: l.owner, expiresAt: new Date(l.expiresAtMs).toISOString() })),
          ...(await store.counts()),
        })
      } finally {
        await store.close()
      }
    }
    return {
      ...summary,
      partitions: log.partitions,
      records: info.records,
      settings: redactedSettings({ ...settings, partitions: log.partitions }),
      log: info,
      marks,
      consumers,
    }
  } finally {
    await log.close()
  }
}

export async function listNamespaces(options: CommonOptions): Promise<NamespaceSummary[]> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const out: NamespaceSummary[] = []
  for (const name of await namespaceNames(config)) {
    try {
      const { settings: _settings, log: _log, marks: _marks, consumers: _consumers, ...summary } = await describe(config, name)
      out.push(summary)
    } catch (error) {
      // One cluster being down does not hide the other namespaces.
      if (!(error instanceof WalError) || error.exitCode === ExitCode.internal) throw error
      const settings = namespaceSettings(config, name)
      out.push({ name, backend: settings.backend, partitions: settings.partitions, declared: settings.declared, description: settings.description, records: null, unavailable: error.message })
    }
  }
  return out
}

export async function showNamespace(options: CommonOptions & { namespace?: string }): Promise<NamespaceDetails> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  return describe(config, options.namespace ?? config.defaultNamespace)
}

/** Names for shell completion (`wal autocomplete --list …`): namespaces, or the targets of every namespace. */
export async function completionNames(options: CommonOptions, kind: 'namespaces' | 'targets' | 'contexts', namespace?: string): Promise<string[]> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  if (kind === 'contexts') return [...config.contexts].sort()
  const namespaces = await namespaceNames(config)
  if (kind === 'namespaces') return namespaces
  const targets = new Set<string>()
  for (const name of namespace === undefined ? namespaces : namespaces.filter((n) => n === namespace)) {
    for (const target of namespaceSettings(config, name).targets) targets.add(target.name)
  }
  return [...targets].sort()
}
