/**
 * The log-backend interface: what every log (embedded SQLite, Kafka, SQS) offers the rest of wal.
 * Commands and the pipeline talk to this, never to a storage library.
 */
import type { ErrorClass, LogRecord, Mutation } from '../envelope/envelope.js'
import type { WalError } from '../errors.js'

/** Where one appended mutation landed. */
export interface AppendResult {
  id: string
  partition: number
  /** -1 where the backend has no offsets (SQS): `queue` and `messageId` say where it is instead. */
  offset: number
  /** True when an earlier mutation with the same idempotency key was found: nothing new was written. */
  duplicate: boolean
  /** SQS: the queue that holds it, and the MessageId SQS gave it. */
  queue?: string
  messageId?: string
  /**
   * Set where a backend writes entries one by one (SQS) and this one failed while others did not: an
   * InvalidRecordError rejects the line, any other error is the backend's (unavailable, unknown outcome).
   */
  error?: WalError
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

export interface AppendOptions {
  /**
   * Where a backend writes entries one by one (SQS): report an entry's failure in its result instead of
   * throwing, so the others are still acked. Without it, append throws when any entry failed.
   */
  perEntryErrors?: boolean
}

/** A transaction as the log holds it (see txn/txn.ts). */
export interface TxnInfo {
  id: string
  /** open: no marker yet; committed: the marker is in the log; aborted: no marker within txnTimeoutMs. */
  state: 'open' | 'committed' | 'aborted'
  openedAtMs: number
  committedAtMs: number | null
  abortedAtMs: number | null
  /** How many parts the log says it has (the records below may be fewer, if one was lost). */
  partCount: number
  /** The parts, in sequence order. */
  parts: Array<{ seq: number; record: LogRecord }>
  marker: LogRecord | null
}

/** A transaction a consumer aborted: no marker within txnTimeoutMs. */
export interface AbortedTxn {
  id: string
  /** 0 where the log does not know how many parts it had (Kafka: they were never readable). */
  partCount: number
  openedAtMs: number
  /** The partition its marker would have had (where its DLQ entry is filed). */
  partition: number
}

/**
 * The code of a log's write lock held by another process past the wait (the embedded log's, by a wal
 * stopped mid-write): a running consumer waits on through it rather than stop.
 */
export const LOG_LOCKED_CODE = 'WAL_LOG_LOCKED'

/** Whether an error says another process held the log's write lock too long. */
export function isLogLocked(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === LOG_LOCKED_CODE
}

export interface ConsumerStoreOptions {
  /**
   * How long a write of the consumer state waits for a lock another process holds (the embedded log)
   * before it fails with WAL_LOG_LOCKED. A running consumer waits on through that (see TargetConsumer),
   * so it asks for a short wait: a stop is not held up by a lock held by a frozen process.
   */
  lockWaitMs?: number
}

export interface LogBackend {
  readonly namespace: string
  readonly partitions: number
  /**
   * Appends mutations durably, as one group commit where the backend allows. Resolves only once every
   * mutation is durable (fsync'd, acknowledged by all replicas, …), with one result per mutation in order.
   */
  append(mutations: readonly Mutation[], options?: AppendOptions): Promise<AppendResult[]>
  /**
   * Whether an append of this many mutations commits on the caller's thread, blocking it until durable
   * (the embedded log without its writer thread). A producer then has nothing to overlap with the
   * commit, and batches it prepares ahead only wait in memory. Absent: appends run elsewhere (a thread,
   * a broker).
   */
  appendBlocks?(count: number): boolean
  /** Low and high offsets of every partition, read now. */
  marks(): Promise<PartitionMark[]>
  /** Per partition, the first offset appended at or after `timeMs` (the high mark where there is none). */
  offsetsForTime(timeMs: number): Promise<Map<number, number>>
  /** Records in append order (per partition: offset order) from the given positions. */
  read(options: ReadOptions): AsyncIterable<LogRecord>
  /**
   * Up to `max` records from the given positions, as `read` would give them first (no follow, no end):
   * one promise per page rather than one per record, for a consumer's hot path. Optional: a consumer
   * falls back to `read` where a backend has none.
   */
  readPage?(from: Positions, max: number): Promise<LogRecord[]>
  info(): Promise<LogInfo>
  /** The consumer state of one target of this namespace. */
  consumerStore(target: string, options?: ConsumerStoreOptions): Promise<ConsumerStore>
  /** The namespace's dead-letter queue (all targets). */
  deadLetterQueue(): Promise<DeadLetterQueue>
  /** The namespace's skip list; absent where the backend keeps none (SQS). */
  skipList?(): Promise<SkipList>
  /** Every record with this mutation id (a replayed mutation appears again, with the same id). */
  find(id: string): Promise<LogRecord[]>
  /**
   * A transaction's parts, marker and state; undefined when the log has no such transaction (or keeps
   * none). Given its marker, a log that keeps no index of transactions (Kafka) finds the parts from it.
   */
  transaction?(id: string, marker?: Mutation): Promise<TxnInfo | undefined>
  close(): Promise<void>
}

/** Which partitions a consumer wants: shard `index` of `count` (partitions p with p % count == index), or a fair share. */
export type ShardRequest = { index: number; count: number } | 'auto'

/** A mutation waiting in the schedule (delayed, backing off, or queued behind one of its key). */
export interface ScheduledMutation {
  seq: number
  partition: number
  dueAtMs: number
  mutation: Mutation
}

export interface DeadLetter {
  partition: number
  mutation: Mutation
  errorClass: ErrorClass
  code: string
  message: string
  atMs: number
}

/** One step in a mutation's life at a target, for `wal explain`. */
export interface HistoryEvent {
  mutationId: string
  atMs: number
  event: 'applied' | 'failed' | 'scheduled' | 'dead-lettered' | 'skipped'
  attempt: number
  /** Which copy of the mutation: 0 as produced, n after its n-th DLQ replay (its wal-replays header). Unknown in older state. */
  delivery?: number
  errorClass?: ErrorClass
  code?: string
  message?: string
}

/** What a consumer commits at once, atomically. */
export interface ConsumerCommit {
  /**
   * The fencing tokens: per partition the change touches, the lease epoch the committer holds it with.
   * Where a backend has lease epochs (embedded), the commit writes nothing at all when any of these
   * partitions is no longer held by the committer with that epoch, and names them in `lost`.
   */
  epochs: ReadonlyMap<number, number>
  /** Next offset to read, per partition. A committed offset never moves back (only an operator reset moves it). */
  offsets: ReadonlyMap<number, number>
  /** Mutations that wait, from their place in the log (partition, offset). */
  schedule: Array<{ partition: number; offset: number; dueAtMs: number; mutation: Mutation }>
  /** Scheduled entries retried again later: same place in their key's order, new time and history. */
  reschedule: Array<{ seq: number; dueAtMs: number; mutation: Mutation }>
  /** Scheduled entries that are done (applied or dead-lettered). */
  unschedule: number[]
  deadLetters: DeadLetter[]
  history: HistoryEvent[]
  /** How far transactions were applied at this target (their parts are applied in sequence order). */
  txnProgress?: Array<{ txn: string; appliedSeq: number; done: boolean }>
}

export interface ClaimResult {
  owned: number[]
  wanted: number[]
  epochs?: ReadonlyMap<number, number>
}

/** A target's consumer state in a log: leases, committed offsets, the schedule and the DLQ. */
export interface ConsumerStore {
  readonly target: string
  /**
   * Claims or renews leases; returns the partitions `owner` holds now, and those its shard should hold.
   * `epochs` (where the backend has them) gives each owned partition's lease epoch: it grows every time a
   * lease is acquired (not when it is renewed), so a consumer that sees it change lost the partition in
   * between and must start it again from the committed offset.
   */
  claim(owner: string, shard: ShardRequest, ttlMs: number): Promise<ClaimResult>
  /** Gives up leases (all of the owner's, or the partitions named). */
  release(owner: string, partitions?: readonly number[]): Promise<void>
  /** Committed next offsets (the low mark where nothing was committed yet). */
  committed(partitions: readonly number[]): Promise<Map<number, number>>
  /**
   * Commits atomically; returns the partitions whose lease `owner` lost. Where the backend fences
   * (embedded), nothing was written when `lost` is not empty: drop those partitions and commit the rest.
   */
  commit(owner: string, change: ConsumerCommit): Promise<{ lost: number[] }>
  /** Scheduled entries per key, in these partitions. */
  scheduledKeyCounts(partitions: readonly number[]): Promise<Map<string, number>>
  /**
   * The first scheduled entry of each key, when due, skipping the keys given. A store may add, after
   * them, entries that follow a head in its key's order, each due, without a gap (a run per key).
   */
  dueScheduled(partitions: readonly number[], nowMs: number, limit: number, skipKeys: ReadonlySet<string>): Promise<ScheduledMutation[]>
  /** When the next scheduled entry that is first of its key is due, in these partitions; null when none is. */
  nextDueAtMs(partitions: readonly number[]): Promise<number | null>
  /** Recorded events of one mutation at this target, and where it waits in the schedule, if it does. */
  story(mutationId: string): Promise<{ history: HistoryEvent[]; scheduled: Array<{ dueAtMs: number; attempts: number; delivery?: number }> }>
  /** Entries waiting in the schedule, and in the DLQ. */
  counts(): Promise<{ scheduled: number; deadLetters: number }>
  /** How far a transaction was applied at this target: the last part applied (-1: none yet), and whether it is done or aborted. */
  txnProgress?(txn: string): Promise<{ appliedSeq: number; state: 'applying' | 'applied' | 'aborted'; atMs: number } | undefined>
  /**
   * Aborts the transactions that have had no marker for `timeoutMs` (for every target), and files a DLQ
   * entry of class txn-aborted for this target for each one it had not filed yet; returns those.
   */
  abortExpiredTransactions?(nowMs: number, timeoutMs: number): Promise<AbortedTxn[]>
  /** Owners of this target's partitions now, and when each lease ends. */
  leases(): Promise<Array<{ partition: number; owner: string; expiresAtMs: number }>>
  /**
   * An operator's reset: sets these partitions' committed offsets (back or forward), atomically.
   * Refused whole (ConflictError, naming the owners) while a live consumer holds one of them, unless
   * `force`: then their leases are fenced in the same transaction (the epoch moves on, so the holder's
   * next commit is refused and it starts over from the new offsets). Returns the owners fenced.
   */
  resetOffsets(offsets: ReadonlyMap<number, number>, options: { force: boolean }): Promise<{ fenced: Array<{ partition: number; owner: string }> }>
  /**
   * Where running consumers carry out a forced reset themselves (Kafka): the part of an open request
   * for these partitions (held by the caller) not done yet; null when there is none.
   */
  pendingReset?(owned: readonly number[]): Promise<{ id: string; offsets: Map<number, number> } | null>
  /** Commits a forced reset's offsets for partitions the caller held and dropped, and records them done. */
  applyReset?(id: string, offsets: ReadonlyMap<number, number>): Promise<void>
  close(): Promise<void>
}

/** A mutation operators marked not to apply: at one target, or (target null) at any. */
export interface SkipEntry {
  id: string
  target: string | null
  reason: string | null
  actor: string
  atMs: number
}

/** The namespace's skip list, in its durable state: consumers read it, `wal skip` writes it. */
export interface SkipList {
  entries(): Promise<SkipEntry[]>
  /** Adds (or replaces) entries. */
  add(entries: readonly SkipEntry[]): Promise<void>
  /** Removes the entries of these ids for this target (null: the entries for any target); returns how many were there. */
  remove(ids: readonly string[], target: string | null): Promise<number>
  close(): Promise<void>
}

/** A mutation in the DLQ. */
export interface DlqEntry {
  seq: number
  /** An identity that outlasts the command, where seq does not (SQS: the MessageId). */
  ref?: string
  target: string
  /**
   * Where a replay addresses the copy when it is not `target`: null for every target of the namespace
   * (an entry the backend moved by itself, not knowing which target failed).
   */
  replayTarget?: string | null
  partition: number
  mutation: Mutation
  errorClass: ErrorClass
  code: string
  message: string
  deadAtMs: number
  /** Held back by the loop guard: not replayed again until dealt with by hand. */
  parked: boolean
}

export interface DlqQuery {
  target?: string
  errorClass?: ErrorClass
  key?: string
  id?: string
  sinceMs?: number
  untilMs?: number
  /** Entries after this seq (paging, resuming). */
  afterSeq?: number
  limit?: number
}

/** One operator action on a DLQ. */
export interface AuditRecord {
  atMs: number
  actor: string
  action: string
  details: Record<string, unknown>
}

export interface DeadLetterQueue {
  /** Matching entries in seq order. */
  entries(query: DlqQuery): Promise<DlqEntry[]>
  /** Removes entries; returns how many were there. */
  remove(seqs: readonly number[]): Promise<number>
  park(seqs: readonly number[]): Promise<void>
  recordAudit(record: AuditRecord): Promise<void>
  audit(limit: number): Promise<AuditRecord[]>
  close(): Promise<void>
}
