/**
 * The topics of a Kafka namespace. Besides the log itself, the consumer pipeline keeps its state in
 * topics next to it, so consumers on any machine share it:
 * - `<topic>.dlq`: dead letters, one partition (its offsets are the DLQ's sequence numbers); each record is
 *   the mutation as in the log, with the failure in `wal-dlq-*` headers.
 * - `<topic>.wal-schedule`: compacted; mutations waiting (delays, long backoffs, queued behind their key),
 *   in the partition of the log they came from, keyed `<target>/<seq>`, removed by a tombstone.
 * - `<topic>.wal-history`: each mutation's events per target, for `wal explain` (time-limited).
 * - `<topic>.wal-state`: compacted; DLQ entries removed or parked, the DLQ's audit trail, and
 *   transactions open or aborted (see transactions.ts).
 */
export interface NamespaceTopics {
  log: string
  dlq: string
  schedule: string
  history: string
  state: string
}

export function namespaceTopics(topic: string): NamespaceTopics {
  return { log: topic, dlq: `${topic}.dlq`, schedule: `${topic}.wal-schedule`, history: `${topic}.wal-history`, state: `${topic}.wal-state` }
}

/** How long history is kept, by default. */
export const HISTORY_RETENTION_MS = 7 * 86_400_000

/**
 * The consumer group of one target of a namespace's topic. It is named after the topic, not the namespace:
 * a namespace name is local to one config, the topic is what consumers on every machine share, and two
 * configs that name different topics alike must not share a group.
 */
export function consumerGroupId(topic: string, target: string): string {
  return `wal.${topic}.${target}`
}
