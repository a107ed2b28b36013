/**
 * The log on a Kafka topic. Appends go through an idempotent producer with acks from all in-sync
 * replicas, to the partition Kafka's default partitioner would pick for the key (murmur2), so other
 * producers of the topic agree. Reads use a group-less partition reader; consumer positions, the
 * schedule and the DLQ live in the cluster too (see topics.ts), so consumers can run anywhere.
 */
import type { NamespaceSettings } from '../../config/schema.js'
import { payloadBytes, type LogRecord, type Mutation } from '../../envelope/envelope.js'
import { NotFoundError } from '../../errors.js'
import { riding } from '../../kafka/client.js'
import type { AppendOptions, AppendResult, ConsumerStore, DeadLetterQueue, LogBackend, LogInfo, PartitionMark, Positions, ReadOptions, SkipList, TxnInfo } from '../backend.js'
import { partitionerFor } from '../partitioner.js'
import { KafkaConnection } from './connection.js'
import { KafkaConsumerStore } from './consumer-store.js'
import { KafkaDeadLetterQueue } from './dead-letter-queue.js'
import { KafkaSkipList } from './skip-list.js'
import { IdempotencyIndex } from './idempotency.js'
import { chunkedRecords, decodeRecord, encodeRecord, type OutgoingRecord } from './record-codec.js'
import { namespaceTopics, type NamespaceTopics } from './topics.js'
import { reassembled, Reassembler } from '../chunks.js'
import { txnOf } from '../../txn/txn.js'
import { KafkaTransactions } from './transactions.js'

/** Mutations sent in one request at most, when appends are grouped. */
const MAX_APPEND_RECORDS = 4000
/** How long a following reader lets the broker wait for new records. */
const FOLLOW_WAIT_MS = 500
/** Records fetched per partition and request. */
const FETCH_BYTES = 1024 * 1024
/** Fetched records kept per partition, at most (one per reader of the log, typically). */
const MAX_BUFFERS = 4

/**
 * Records of one fetch, shared by every reader of the log (one per target, typically) and never changed:
 * each reader keeps its own position, so one reader's progress never skips records for another.
 */
interface Buffered {
  /** The fetch started here: the records hold everything from here to `end`, in offset order. */
  from: number
  end: number
  records: LogRecord[]
}

/** How far back ids are looked for by `find` before their own time (producers' clocks differ). */
const FIND_SKEW_MS = 5 * 60_000

export class KafkaLog implements LogBackend {
  readonly topics: NamespaceTopics
  /** Records fetched and not yet read, per partition: a reader that stops early resumes from them. */
  private readonly buffered = new Map<number, Buffered[]>()
  private readonly idempotency: IdempotencyIndex
  readonly transactions: KafkaTransactions

  private constructor(
    readonly settings: NamespaceSettings,
    readonly connection: KafkaConnection,
    readonly partitions: number,
  ) {
    this.topics = namespaceTopics(settings.kafka!.topic)
    this.idempotency = new IdempotencyIndex(this)
    this.transactions = new KafkaTransactions(this)
    const partitioner = partitionerFor(settings.kafka!.partitioner)
    this.partitionOf = (key) => partitioner(key, this.partitions)
  }

  /** The partition of a key, by the namespace's partitioner. */
  readonly partitionOf: (key: string) => number

  get namespace(): string {
    return this.settings.name
  }

  static async open(settings: NamespaceSettings, options: { write?: boolean } = {}): Promise<KafkaLog> {
    const connection = await KafkaConnection.open(settings.kafka!)
    // A writer connects its producer while the topic is looked up (and stdin is read).
    if (options.write) connection.producer().catch(() => undefined)
    try {
      const topic = settings.kafka!.topic
      const partitions = await connection.partitionCount(topic)
      if (partitions === null) {
        throw new NotFoundError(`namespace "${settings.name}": topic "${topic}" does not exist on Kafka cluster "${settings.kafka!.cluster.name}"`, {
          code: 'WAL_TOPIC_NOT_FOUND',
          suggestions: [`create its topics with \`wal ns init -n ${settings.name}\``],
        })
      }
      return new KafkaLog(settings, connection, partitions)
    } catch (error) {
      await connection.close()
      throw error
    }
  }

  /**
   * Appends made while a send is in flight go together in the next one (group commit, as on the
   * embedded log): the idempotent producer sends one request at a time, so this is what keeps it busy.
   */
  append(mutations: readonly Mutation[], options: AppendOptions = {}): Promise<AppendResult[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ mutations, perEntryErrors: options.perEntryErrors ?? false, resolve, reject })
      if (!this.appending) void this.appendPending()
    })
  }

  private pending: Array<{ mutations: readonly Mutation[]; perEntryErrors: boolean; resolve: (results: AppendResult[]) => void; reject: (error: unknown) => void }> = []
  private appending = false

  private async appendPending(): Promise<void> {
    this.appending = true
    try {
      while (this.pending.length > 0) {
        let count = 0
        let taken = 0
        while (taken < this.pending.length && (taken === 0 || count + this.pending[taken]!.mutations.length <= MAX_APPEND_RECORDS)) {
          count += this.pending[taken]!.mutations.length
          taken++
        }
        const group = this.pending.splice(0, taken)
        try {
          const results = await this.appendNow(group.flatMap((g) => g.mutations))
          let at = 0
          for (const g of group) {
            const own = results.slice(at, at + g.mutations.length)
            at += g.mutations.length
            const failed = g.perEntryErrors ? undefined : own.find((r) => r.error)
            if (failed) g.reject(failed.error)
            else g.resolve(own)
          }
        } catch (error) {
          for (const g of group) g.reject(error)
        }
      }
    } finally {
      this.appending = false
    }
  }

  private async appendNow(mutations: readonly Mutation[]): Promise<AppendResult[]> {
    if (mutations.some((m) => txnOf(m) !== undefined)) {
      // Parts and markers go through their Kafka transaction (transactions.ts), in order; the rest as usual.
      const plain = await this.appendNow(mutations.filter((m) => txnOf(m) === undefined))
      const results: AppendResult[] = []
      let next = 0
      for (const m of mutations) results.push(txnOf(m) === undefined ? plain[next++]! : await this.transactions.append(m))
      return results
    }
    if (mutations.length === 0) return []
    const limit = await this.connection.maxMessageBytes(this.topics.log)
    if (mutations.length > 1 && mutations.some((m) => mayChunk(m, limit))) {
      // A payload that may need chunks is appended alone (its own Kafka transaction), the rest around it
      // in runs, in order.
      const results: AppendResult[] = []
      let run: Mutation[] = []
      for (const m of mutations) {
        if (!mayChunk(m, limit)) {
          run.push(m)
          continue
        }
        results.push(...(await this.appendNow(run)), ...(await this.appendNow([m])))
        run = []
      }
      results.push(...(await this.appendNow(run)))
      return results
    }
    const results: Array<AppendResult | undefined> = new Array(mutations.length)
    const duplicates = await this.idempotency.lookup(mutations.map((m) => (m.idempotencyKey === null ? null : { key: m.idempotencyKey, partition: this.partitionOf(m.key) })))
    const messages: OutgoingRecord[] = []
    const sent: number[] = []
    /** Per mutation written in chunks, the index of its last chunk in `messages` (it holds the answer). */
    const chunked = new Map<number, number>()
    /** A key repeated within this batch: the first one is written, the others are its duplicates. */
    const inBatch = new Map<string, number>()
    mutations.forEach((m, i) => {
      const found = duplicates[i]
      if (found) {
        results[i] = { id: found.id, partition: found.partition, offset: found.offset, duplicate: true }
        return
      }
      if (m.idempotencyKey !== null) {
        const first = inBatch.get(m.idempotencyKey)
        if (first !== undefined) return
        inBatch.set(m.idempotencyKey, i)
      }
      const record = encodeRecord(m)
      record.partition = this.partitionOf(m.key)
      const chunks = chunkedRecords(record, limit)
      if (chunks.length > 1) {
        // Larger than a record the topic takes: ordered chunks of one partition (see log/chunks.ts).
        chunked.set(i, messages.length)
        for (const chunk of chunks) {
          messages.push(chunk)
          sent.push(-1)
        }
        sent[messages.length - 1] = i
        return
      }
      messages.push(record)
      sent.push(i)
    })
    if (messages.length > 0) {
      // A payload in chunks is written in one Kafka transaction (it is appended alone, see above): a
      // writer that dies midway leaves nothing read_committed readers see, never a partial group.
      const [outcomes] =
        chunked.size > 0
          ? await this.transactions.once(
              `chunks.${mutations[[...chunked.keys()][0]!]!.id}`,
              (tx) => this.connection.sendRecords([{ topic: this.topics.log, messages }], tx),
              ([all]) => all!.every((o) => o.error === undefined),
            )
          : await this.connection.sendRecords([{ topic: this.topics.log, messages }])
      for (let j = 0; j < messages.length; j++) {
        const i = sent[j]!
        if (i === -1) continue
        // A chunked payload is written when all its chunks are: the first failure answers for it.
        const outcome = chunked.has(i) ? (outcomes!.slice(chunked.get(i)!, j + 1).find((o) => o.error) ?? outcomes![j]!) : outcomes![j]!
        if (outcome.error) {
          results[i] = { id: mutations[i]!.id, partition: messages[j]!.partition!, offset: -1, duplicate: false, error: outcome.error }
          continue
        }
        results[i] = { id: mutations[i]!.id, partition: outcome.partition, offset: outcome.offset, duplicate: false }
        const key = mutations[i]!.idempotencyKey
        if (key !== null) this.idempotency.remember(key, { id: mutations[i]!.id, partition: outcome.partition, offset: outcome.offset })
      }
    }
    mutations.forEach((m, i) => {
      if (results[i] === undefined) {
        const first = results[inBatch.get(m.idempotencyKey!)!]!
        results[i] = { ...first, duplicate: true }
      }
    })
    return results as AppendResult[]
  }

  marks(): Promise<PartitionMark[]> {
    return this.connection.marks(this.topics.log)
  }

  async offsetsForTime(timeMs: number): Promise<Map<number, number>> {
    try {
      const [found, marks] = await Promise.all([riding(() => this.connection.admin.fetchTopicOffsetsByTimestamp(this.topics.log, timeMs)), this.marks()])
      return new Map(found.map((o) => [o.partition, Number(o.offset) < 0 ? marks[o.partition]!.high : Number(o.offset)]))
    } catch (error) {
      throw this.connection.error(error)
    }
  }

  /** Records in offset order, a payload written in chunks put together again (see log/chunks.ts). */
  read(options: ReadOptions): AsyncIterable<LogRecord> {
    return reassembled(this.readRecords(options), `topic ${this.topics.log}`)
  }

  /**
   * Up to `max` records from `from`, as `read` gives them first: a page of a fetch at a time (one promise
   * per page, not two per record), for a consumer's hot path. Records past `max` stay in the fetch
   * buffers for the next page; so does a payload in chunks not yet complete (it is read again from its
   * first chunk).
   */
  async readPage(from: Positions, max: number): Promise<LogRecord[]> {
    const reassembler = new Reassembler(`topic ${this.topics.log}`)
    const out: LogRecord[] = []
    for await (const page of this.readPages({ from })) {
      for (const record of page) {
        const whole = reassembler.push(record)
        for (let i = 0; i < whole.length; i++) out.push(whole[i]!)
      }
      if (out.length >= max) break
    }
    // Per partition, what is left out is the end of its records here: read again from there next time.
    if (out.length > max) out.length = max
    return out
  }

  private async *readRecords(options: ReadOptions): AsyncIterable<LogRecord> {
    for await (const page of this.readPages(options)) yield* page
  }

  /** Records in offset order per partition, a run of one partition's records at a time. */
  private async *readPages(options: ReadOptions): AsyncIterable<LogRecord[]> {
    const positions = new Map(options.from)
    for (const [p, offset] of positions) {
      const until = options.until?.get(p)
      if (until !== undefined && offset >= until) positions.delete(p)
    }
    const reader = await this.connection.reader()
    while (positions.size > 0 && !options.signal?.aborted) {
      let yielded = false
      // Records left from an earlier fetch come first (a reader that stopped early resumes from them).
      for (const p of [...positions.keys()]) {
        const buffer = this.takeBuffer(p, positions.get(p)!)
        if (!buffer) continue
        const until = options.until?.get(p)
        const first = firstAtOrAfter(buffer.records, positions.get(p)!)
        let next = first
        while (next < buffer.records.length && (until === undefined || buffer.records[next]!.offset < until)) next++
        const page = next > first ? buffer.records.slice(first, next) : undefined
        if (page) positions.set(p, page.at(-1)!.offset + 1)
        // Past its last record, the fetch also stepped over what it skipped (control records, gaps).
        if (next >= buffer.records.length) positions.set(p, Math.max(positions.get(p)!, buffer.end))
        if (until !== undefined && positions.get(p)! >= until) positions.delete(p)
        if (page) {
          yielded = true
          yield page
        }
      }
      if (yielded) continue
      let fetched
      try {
        fetched = await reader.fetch(this.topics.log, positions, { maxWaitMs: options.follow ? FOLLOW_WAIT_MS : 0, maxBytesPerPartition: FETCH_BYTES })
      } catch (error) {
        if (rootName(error) === 'KafkaJSOffsetOutOfRange') {
          // Records before the low mark are gone (retention): go on from the oldest that is left.
          const marks = await this.marks()
          for (const [p, offset] of positions) if (offset < marks[p]!.low) positions.set(p, marks[p]!.low)
          continue
        }
        throw this.connection.error(error)
      }
      let caughtUp = true
      for (const f of fetched) {
        const from = positions.get(f.partition)!
        if (f.records.length > 0) {
          const records = f.records.map((r) => decodeRecord(r, this.topics.log, f.partition, this.namespace))
          this.keepBuffer(f.partition, { from, end: f.nextOffset, records })
          caughtUp = false
          continue
        }
        if (f.nextOffset > from) {
          positions.set(f.partition, f.nextOffset)
          caughtUp = false
        }
        const until = options.until?.get(f.partition)
        if (until !== undefined && (positions.get(f.partition)! >= until || (f.records.length === 0 && f.stableOffset <= positions.get(f.partition)!))) {
          // Reached the snapshot's end, or nothing is left below it that can be read now (records removed
          // by compaction; records of a Kafka transaction still open, which read_committed readers see
          // only once it is committed: a writer that died inside one leaves the rest of its partition
          // waiting until the brokers abort it, after its transaction timeout).
          positions.delete(f.partition)
        }
      }
      if (caughtUp && !options.follow && options.until === undefined) return
    }
  }

  /** A buffer of this partition that holds the records from `position` on (the newest such). */
  private takeBuffer(partition: number, position: number): Buffered | undefined {
    return this.buffered.get(partition)?.findLast((b) => b.from <= position && position < b.end)
  }

  private keepBuffer(partition: number, buffer: Buffered): void {
    // Several readers of one log (one per target) read at their own pace; the oldest fetch goes first.
    const buffers = (this.buffered.get(partition) ?? []).slice(-(MAX_BUFFERS - 1))
    buffers.push(buffer)
    this.buffered.set(partition, buffers)
  }

  async info(): Promise<LogInfo> {
    const marks = await this.marks()
    return {
      location: `kafka://${this.settings.kafka!.cluster.name}/${this.topics.log} (${this.settings.kafka!.cluster.brokers.join(',')})`,
      records: marks.reduce((sum, m) => sum + (m.high - m.low), 0),
      sizeBytes: null,
    }
  }

  consumerStore(target: string): Promise<ConsumerStore> {
    return Promise.resolve(new KafkaConsumerStore(this, target))
  }

  deadLetterQueue(): Promise<DeadLetterQueue> {
    return Promise.resolve(new KafkaDeadLetterQueue(this))
  }

  skipList(): Promise<SkipList> {
    return Promise.resolve(new KafkaSkipList(this))
  }

  async find(id: string): Promise<LogRecord[]> {
    const idTimeMs = ulidTimeMs(id)
    const from = idTimeMs === null ? undefined : await this.offsetsForTime(idTimeMs - FIND_SKEW_MS)
    const found: LogRecord[] = []
    const wanted = Buffer.from(id)
    for await (const { partition, record } of this.connection.snapshot(this.topics.log, { from })) {
      const header = record.headers?.['wal-id']
      if (header !== undefined) {
        if (!(Buffer.isBuffer(header) ? header.equals(wanted) : String(header) === id)) continue
      }
      const decoded = decodeRecord(record, this.topics.log, partition, this.namespace)
      if (decoded.id === id) found.push(decoded)
    }
    // Chunks of one payload (same id, consecutive in their partition) become the record again.
    found.sort((a, b) => a.partition - b.partition || a.offset - b.offset)
    const reassembler = new Reassembler(`topic ${this.topics.log}`)
    return found.flatMap((record) => reassembler.push(record))
  }

  /**
   * A transaction, from its marker. Kafka keeps no index of transactions: without the marker, it is
   * looked for in the partition of the transaction id (where its marker is written), oldest first. An
   * open or aborted Kafka transaction is not readable (read_committed): without a marker, what the state
   * topic records of it (open, aborted), if anything (unless `markerOnly`). `onBlocked` is told when the
   * search stopped short at another Kafka transaction still open (the marker may be past it).
   */
  async transaction(id: string, marker?: Mutation, options: { markerOnly?: boolean; onBlocked?: () => void } = {}): Promise<TxnInfo | undefined> {
    if (marker !== undefined) return this.transactions.info(id, marker)
    const wanted = Buffer.from(id)
    for await (const { partition, record } of this.connection.snapshot(this.topics.log, { partitions: [this.partitionOf(id)], onBlocked: options.onBlocked })) {
      const key = record.key
      if (key === null || key === undefined || !(Buffer.isBuffer(key) ? key.equals(wanted) : String(key) === id)) continue
      const found = decodeRecord(record, this.topics.log, partition, this.namespace)
      const role = txnOf(found)
      if (role?.marker !== true || role.id !== id || found.poison) continue
      const info = await this.transactions.info(id, found)
      return info === undefined ? undefined : { ...info, committedAtMs: found.appendedAtMs, marker: found }
    }
    if (options.markerOnly) return undefined
    const state = (await this.transactions.states()).txns.get(id)
    if (state === undefined) return undefined
    return { id, state: state.state, openedAtMs: state.openedAtMs, committedAtMs: null, abortedAtMs: state.abortedAtMs ?? null, partCount: 0, parts: [], marker: null }
  }

  async close(): Promise<void> {
    await this.transactions.close()
    await this.connection.close()
  }
}

function rootName(error: unknown): string | undefined {
  return (error as { name?: string }).name
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** The time part of a ULID, or null when the id is not one. */
export function ulidTimeMs(id: string): number | null {
  if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)) return null
  let ms = 0
  for (const c of id.slice(0, 10)) ms = ms * 32 + CROCKFORD.indexOf(c)
  return ms
}

/** The index of the first record at or past `offset` (records are in offset order). */
function firstAtOrAfter(records: readonly LogRecord[], offset: number): number {
  let low = 0
  let high = records.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (records[middle]!.offset < offset) low = middle + 1
    else high = middle
  }
  return low
}

/** Whether a mutation may be larger than a record of the topic (then it is written in chunks). */
function mayChunk(m: Mutation, limit: number): boolean {
  let bytes = payloadBytes(m.payload) + 4096
  for (const name of Object.keys(m.headers)) bytes += name.length + (m.headers[name]?.length ?? 0)
  return bytes * 2 > limit
}
