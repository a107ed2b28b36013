/**
 * Which consumers the daemon should run for a config, and what a reload changes: pure functions, so
 * the rules (what counts as a change, what is left alone) are tested without processes.
 */
import { namespaceSettings } from '../config/load.js'
import { ConfigError } from '../errors.js'
import { refuseForwardingLoop } from '../targets/forwarding-loop.js'
import type { NamespaceSettings, ResolvedConfig, TargetSettings } from '../config/schema.js'

/**
 * One consumer, over the daemon's shard of a namespace's partitions: a target of the namespace, or, on
 * an SQS namespace, all of its targets (a message is received once, so one consumer applies it to each).
 */
export interface ConsumerSpec {
  /** "namespace/target", or "namespace/*" for an SQS namespace's consumer: stable across reloads. */
  key: string
  namespace: NamespaceSettings
  /** The targets it applies to: one, or every target of an SQS namespace. */
  targets: TargetSettings[]
  shard: string
  concurrency: number
  leaseTtlMs: number
  /** Everything that, when it differs, means the consumer must restart to take it on. */
  fingerprint: string
}

export interface ConsumerPlanDiff {
  added: ConsumerSpec[]
  removed: string[]
  changed: ConsumerSpec[]
  unchanged: string[]
}

/** What of a namespace its log depends on: a change means the log is opened again. */
export function logFingerprint(ns: NamespaceSettings): string {
  return JSON.stringify({ backend: ns.backend, partitions: ns.partitions, kafka: ns.kafka, sqs: ns.sqs })
}

/**
 * The consumers a config asks for: every target of every declared namespace and, when namespaces are
 * created on demand, of every namespace that has a log (`existing`). An SQS namespace gets one consumer
 * for all its targets, so a change to any of them restarts it.
 */
export function planConsumers(config: ResolvedConfig, existing: readonly string[] = []): Map<string, ConsumerSpec> {
  const names = new Set(config.namespaces.keys())
  if (config.autoCreateNamespaces) for (const name of existing) names.add(name)
  const plan = new Map<string, ConsumerSpec>()
  const { shard, concurrency, leaseTtlMs } = config.daemon
  for (const name of [...names].sort()) {
    const namespace = namespaceSettings(config, name)
    const groups = namespace.backend === 'sqs' ? (namespace.targets.length > 0 ? [{ key: `${name}/*`, targets: namespace.targets }] : []) : namespace.targets.map((t) => ({ key: `${name}/${t.name}`, targets: [t] }))
    for (const { key, targets } of groups) {
      refuseForwardingLoop(config, namespace, targets)
      refuseStdoutTarget(name, targets)
      // daemon.concurrency, else the target's own (Cassandra), else 16; an SQS consumer, the most parallel target's.
      const applies = concurrency ?? Math.max(...targets.map((t) => (t.type === 'cassandra' ? t.concurrency : 16)))
      const fingerprint = JSON.stringify({ log: logFingerprint(namespace), rate: namespace.ratePerSec, targets, shard, concurrency: applies, leaseTtlMs })
      plan.set(key, { key, namespace, targets, shard, concurrency: applies, leaseTtlMs, fingerprint })
    }
  }
  return plan
}

/**
 * The daemon writes its log on stdout: a file target there (path "-") would mix its envelopes with the
 * log's lines, one cut into the other where a write to a pipe is split.
 */
function refuseStdoutTarget(namespace: string, targets: readonly TargetSettings[]): void {
  for (const t of targets) {
    if (t.type !== 'file' || t.path !== '-') continue
    throw new ConfigError(`target "${t.name}" of namespace "${namespace}" writes to stdout (path "-"), where the daemon writes its log`, {
      code: 'WAL_DAEMON_STDOUT_TARGET',
      details: { namespace, target: t.name },
      suggestions: [`give namespaces.${namespace}.targets.${t.name}.path a file or a FIFO, or apply it with \`wal consume -n ${namespace}\` instead`],
    })
  }
}

/** What a reload does: start the added, stop the removed, restart the changed, leave the rest alone. */
export function diffConsumers(running: ReadonlyMap<string, { fingerprint: string }>, wanted: ReadonlyMap<string, ConsumerSpec>): ConsumerPlanDiff {
  const diff: ConsumerPlanDiff = { added: [], removed: [], changed: [], unchanged: [] }
  for (const [key, spec] of wanted) {
    const current = running.get(key)
    if (!current) diff.added.push(spec)
    else if (current.fingerprint !== spec.fingerprint) diff.changed.push(spec)
    else diff.unchanged.push(key)
  }
  for (const key of running.keys()) if (!wanted.has(key)) diff.removed.push(key)
  return diff
}

/** Settings of the daemon that need a restart to change (the listening socket). */
export function restartOnlyChanges(before: ResolvedConfig, after: ResolvedConfig): string[] {
  const changed: string[] = []
  if (before.daemon.host !== after.daemon.host) changed.push('daemon.host')
  if (before.daemon.port !== after.daemon.port) changed.push('daemon.port')
  if (JSON.stringify(before.daemon.tls) !== JSON.stringify(after.daemon.tls)) changed.push('daemon.tls')
  if (before.stateDir !== after.stateDir) changed.push('stateDir')
  return changed
}
