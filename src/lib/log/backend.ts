/**
 * The log-backend interface: what every log (embedded SQLite, Kafka, SQS) offers the rest of wal.
 * Commands and the pipeline talk to this, never to a storage library.
 */
import type { LogRecord, Mutation } from '../envelope/envelope.js'

/** Where one appended mutation landed. */
export interface AppendResult {
  id: string
  partition: number
  offset: number
  /** True when an earlier mutation with the same idempotency key was found: nothing new was written. */
  duplicate: boolean
}

/** Offsets of one partition: `low` is the first offset held, `high` the next one to be written. */
export interface PartitionMark {
  partition: number
  low: number
  high: number
}

/** Next offset to read, per partition. */
export type Positions = ReadonlyMap<number, number>

export interface ReadOptions {
  /** Start here (inclusive) in each partition; partitions not named are not read. */
  from: Positions
  /** Stop before this offset in each partition; without it, read until caught up (or forever if following). */
  until?: Positions
  /** Keep waiting for new records once caught up. */
  follow?: boolean
  signal?: AbortSignal
}

/** What `wal ns show` reports about a log. */
export interface LogInfo {
  /** Where the log lives (a file, a topic, a queue URL). */
  location: string
  records: number
  /** Size on disk, where the backend can tell. */
  sizeBytes: number | null
}

export interface LogBackend {
  readonly namespace: string
  readonly partitions: number
  /**
   * Appends mutations durably, as one group commit where the backend allows. Resolves only once every
   * mutation is durable (fsync'd, acknowledged by all replicas, …), with one result per mutation in order.
   */
  append(mutations: readonly Mutation[]): Promise<AppendResult[]>
  /** Low and high offsets of every partition, read now. */
  marks(): Promise<PartitionMark[]>
  /** Per partition, the first offset appended at or after `timeMs` (the high mark where there is none). */
  offsetsForTime(timeMs: number): Promise<Map<number, number>>
  /** Records in append order (per partition: offset order) from the given positions. */
  read(options: ReadOptions): AsyncIterable<LogRecord>
  info(): Promise<LogInfo>
  close(): Promise<void>
}
