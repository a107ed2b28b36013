/**
 * Forwarding loops, found from the configuration alone. A `kafka` or `sqs` target writes each mutation
 * as a new entry of the next hop's log (see forwardedCopy). When that log is the one its own namespace
 * reads — directly, or through other namespaces of the same config (A → B → A) — every mutation is
 * forwarded again and again, each time a new record: the logs grow without end and nothing reports it.
 * `consume`, the daemon and `config validate` refuse such a config (exit 3) and name the way round.
 *
 * Two logs are the same when their cluster is (the same cluster name, or brokers in common; for SQS the
 * same region, endpoint and credentials) and so is the topic, or the queue a target names is one of a
 * namespace's shard queues. Hops through an HTTP endpoint, or a config on another machine, are not seen.
 */
import type { KafkaClusterSettings, NamespaceSettings, ResolvedConfig, SqsClusterSettings, TargetSettings } from '../config/schema.js'
import { ConfigError } from '../errors.js'
import { namespaceQueues } from '../log/sqs/queues.js'

function sameKafkaCluster(a: KafkaClusterSettings, b: KafkaClusterSettings): boolean {
  if (a.name === b.name) return true
  const brokers = new Set(a.brokers.map((broker) => broker.toLowerCase()))
  return b.brokers.some((broker) => brokers.has(broker.toLowerCase()))
}

/** The same account's queues: a queue of the same name under other credentials is another account's. */
function sameSqsCluster(a: SqsClusterSettings, b: SqsClusterSettings): boolean {
  if (a.name === b.name) return true
  return a.region === b.region && a.endpoint === b.endpoint && a.profile === b.profile && a.credentials?.accessKeyId === b.credentials?.accessKeyId
}

/** The namespaces of the config whose log this target writes into. */
function writesInto(target: TargetSettings, namespaces: Iterable<NamespaceSettings>): NamespaceSettings[] {
  const found: NamespaceSettings[] = []
  for (const ns of namespaces) {
    if (target.type === 'kafka' && ns.kafka !== null && ns.kafka.topic === target.topic && sameKafkaCluster(ns.kafka.cluster, target.cluster)) found.push(ns)
    if (target.type === 'sqs' && ns.sqs !== null && sameSqsCluster(ns.sqs.cluster, target.cluster)) {
      const queue = target.fifo ? `${target.queue}.fifo` : target.queue
      if (namespaceQueues(ns.sqs).shards.includes(queue)) found.push(ns)
    }
  }
  return found
}

function sameLog(a: NamespaceSettings, b: NamespaceSettings): boolean {
  if (a.kafka !== null && b.kafka !== null) return a.kafka.topic === b.kafka.topic && sameKafkaCluster(a.kafka.cluster, b.kafka.cluster)
  if (a.sqs !== null && b.sqs !== null && sameSqsCluster(a.sqs.cluster, b.sqs.cluster)) {
    const queues = new Set(namespaceQueues(a.sqs).shards)
    return namespaceQueues(b.sqs).shards.some((queue) => queues.has(queue))
  }
  return false
}

function describe(namespace: string, target: TargetSettings): string {
  const where = target.type === 'kafka' ? `topic "${target.topic}" of Kafka cluster "${target.cluster.name}"` : target.type === 'sqs' ? `queue "${target.queue}${target.fifo ? '.fifo' : ''}"` : target.type
  return `namespace "${namespace}" target "${target.name}" writes into ${where}`
}

/**
 * The way round when consuming `targets` of `namespace` would forward its mutations back into its own
 * log (one step per hop, ending where it started), or null. The other namespaces' hops count all their
 * targets, since any of them may run.
 */
export function forwardingLoop(config: ResolvedConfig, namespace: NamespaceSettings, targets: readonly TargetSettings[] = namespace.targets): string[] | null {
  // An embedded log: no target writes into it.
  if (namespace.kafka === null && namespace.sqs === null) return null
  const all = [...config.namespaces.values()]
  // Namespaces declared on this same log (two names for one topic) close the loop as well.
  const start = new Set(all.filter((ns) => sameLog(ns, namespace)).map((ns) => ns.name))
  start.add(namespace.name)
  const seen = new Set<string>()
  const search = (from: NamespaceSettings, via: readonly TargetSettings[], path: string[]): string[] | null => {
    for (const target of via) {
      for (const next of writesInto(target, all)) {
        const step = [...path, describe(from.name, target)]
        if (start.has(next.name)) return step
        if (seen.has(next.name)) continue
        seen.add(next.name)
        const found = search(next, next.targets, [...step, `namespace "${next.name}" reads it`])
        if (found) return found
      }
    }
    return null
  }
  return search(namespace, targets, [])
}

/** Throws a ConfigError (exit 3) naming the way round when consuming these targets would forward in a loop. */
export function refuseForwardingLoop(config: ResolvedConfig, namespace: NamespaceSettings, targets?: readonly TargetSettings[]): void {
  const loop = forwardingLoop(config, namespace, targets)
  if (loop === null) return
  throw new ConfigError(`forwarding loop: ${loop.join(', ')}, which namespace "${namespace.name}" reads: every mutation would be forwarded again and again`, {
    code: 'WAL_FORWARD_LOOP',
    suggestions: ['point the target at another topic or queue (the next hop\'s log), or remove it'],
  })
}
