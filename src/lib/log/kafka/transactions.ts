/**
 * Transactions on a Kafka namespace (see txn/txn.ts): each transaction's parts and marker are written in
 * one Kafka transaction of a transactional producer of its own (transactionalId `wal.<topic>.<txn>`),
 * committed when the marker is written. Consumers read `read_committed`, so they see the parts and the
 * marker together or not at all: a producer that dies before its marker leaves nothing to apply (the
 * brokers abort its Kafka transaction after txnTimeoutMs). The marker's payload lists where each part
 * is, `{"txn": ID, "parts": [[partition, offset], …]}`: that is how its consumer finds them.
 *
 * So that a transaction whose marker never comes is reported (as on the other logs), each one is first
 * recorded open in the namespace's compacted state topic (key `txn:ID`, acks from all in-sync replicas,
 * before any part is written), and removed (a tombstone) once its Kafka transaction is committed. A
 * consumer of the partition of the transaction id that finds one open for longer than txnTimeoutMs
 * fences its writer (a producer of the same transactionalId: the brokers abort what it left open, and a
 * marker it writes later is refused), looks for the marker in the log, and if there is none records the
 * transaction aborted and files one DLQ entry of class txn-aborted for its target — in one Kafka
 * transaction with the key `txn-aborted:[TARGET,ID,OPENED_AT_MS]` that says so, under a
 * transactionalId of its own, so consumers that race or restart file it once.
 */
import type { Mutation, LogRecord } from '../../envelope/envelope.js'
import { DurabilityUnknownError, InvalidRecordError } from '../../errors.js'
import { rootKafkaError } from '../../kafka/client.js'
import { abortedTxnEntry, markMarker, txnOf } from '../../txn/txn.js'
import type { AbortedTxn, AppendResult, TxnInfo } from '../backend.js'
import { dlqRecord } from './dead-letter-queue.js'
import type { KafkaLog } from './kafka-log.js'
import { chunkedRecords, encodeRecord, type OutgoingRecord } from './record-codec.js'

/** A transaction as the state topic records it (key `txn:ID`). */
export interface TxnState {
  txn: string
  state: 'open' | 'aborted'
  openedAtMs: number
  abortedAtMs?: number
}

/** What the brokers answer a writer whose Kafka transaction was aborted (timed out, or fenced by a consumer). */
const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_PRODUCER_ID_MAPPING', 'INVALID_TXN_STATE'])

const STATE_PREFIX = 'txn:'
const FILED_PREFIX = 'txn-aborted:'
/** Filed for one opening of the transaction: an id used again after an abort is another transaction. */
const filedKey = (target: string, t: TxnState): string => `${FILED_PREFIX}${JSON.stringify([target, t.txn, t.openedAtMs])}`

interface Open {
  producer: import('kafkajs').Producer
  tx: import('kafkajs').Transaction
  parts: Array<[partition: number, offset: number]>
}

export class KafkaTransactions {
  private readonly open = new Map<string, Promise<Open>>()

  constructor(private readonly log: KafkaLog) {}

  private begin(id: string): Promise<Open> {
    let open = this.open.get(id)
    if (!open) {
      open = (async () => {
        // Recorded open before any part is written (while the producer connects), so a writer that dies
        // leaves it to be reported aborted.
        const opened = this.record(id, { txn: id, state: 'open', openedAtMs: Date.now() })
        const producer = this.log.connection.kafka.producer({
          transactionalId: `wal.${this.log.topics.log}.${id}`,
          idempotent: true,
          maxInFlightRequests: 1,
          transactionTimeout: this.log.settings.txnTimeoutMs,
          allowAutoTopicCreation: false,
        })
        try {
          const [, tx] = await Promise.all([opened, producer.connect().then(() => producer.transaction())])
          return { producer, tx, parts: [] }
        } catch (error) {
          await producer.disconnect().catch(() => undefined)
          throw error
        }
      })()
      this.open.set(id, open)
      open.catch(() => this.open.delete(id))
    }
    return open
  }

  /**
   * Runs `work` inside a Kafka transaction of its own (transactionalId `wal.<topic>.<name>`): committed
   * when `ok` says the work succeeded, else aborted. A writer that dies inside leaves nothing that
   * read_committed readers see (the brokers abort it after txnTimeoutMs). A failed commit is an
   * unknown outcome.
   */
  async once<T>(name: string, work: (tx: import('kafkajs').Transaction) => Promise<T>, ok: (result: T) => boolean): Promise<T> {
    let producer: import('kafkajs').Producer | undefined
    let tx: import('kafkajs').Transaction | undefined
    try {
      producer = this.log.connection.kafka.producer({
        transactionalId: `wal.${this.log.topics.log}.${name}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: this.log.settings.txnTimeoutMs,
        allowAutoTopicCreation: false,
      })
      await producer.connect()
      tx = await producer.transaction()
    } catch (error) {
      await producer?.disconnect().catch(() => undefined)
      throw this.log.connection.error(error)
    }
    try {
      let result: T
      try {
        result = await work(tx)
      } catch (error) {
        await tx.abort().catch(() => undefined)
        throw error
      }
      if (!ok(result)) {
        await tx.abort().catch(() => undefined)
        return result
      }
      try {
        await tx.commit()
      } catch (error) {
        const cause = this.log.connection.error(error)
        throw new DurabilityUnknownError(`committing the Kafka transaction ${name}: ${cause.message}`, { cause })
      }
      return result
    } finally {
      await producer.disconnect().catch(() => undefined)
    }
  }

  /** Writes one part or marker inside its transaction; the marker commits it. */
  async append(m: Mutation): Promise<AppendResult> {
    const role = txnOf(m)!
    const partition = this.log.partitionOf(m.key)
    if (role.marker && !this.open.has(role.id)) {
      return { id: m.id, partition, offset: -1, duplicate: false, error: new InvalidRecordError(`transaction ${JSON.stringify(role.id)} has no parts written by this process: not committed`, { code: 'WAL_TXN_REFUSED' }) }
    }
    let open: Open
    try {
      open = await this.begin(role.id)
    } catch (error) {
      throw this.log.connection.error(error)
    }
    if (role.marker) {
      const why =
        open.parts.length === 0 ? 'has no parts written by this process' : role.parts !== null && role.parts !== open.parts.length ? `has ${open.parts.length} parts written, but its marker closes ${role.parts}` : undefined
      if (why !== undefined) {
        await this.abort(role.id)
        return { id: m.id, partition, offset: -1, duplicate: false, error: new InvalidRecordError(`transaction ${JSON.stringify(role.id)} ${why}: not committed`, { code: 'WAL_TXN_REFUSED' }) }
      }
      m = { ...m, payload: { encoding: 'json', json: JSON.stringify({ txn: role.id, parts: open.parts }) } }
      markMarker(m, role.id, open.parts.length)
    }
    const record = encodeRecord(m)
    record.partition = partition
    // Not chunked: a part is one record of the Kafka transaction (one above the topic's limit is refused).
    const records = [record]
    let offset: number
    try {
      const sent = await open.tx.send({ topic: this.log.topics.log, acks: -1, messages: records })
      offset = Number(sent[0]!.baseOffset ?? sent[0]!.offset) + records.length - 1
      if (!role.marker) open.parts.push([partition, offset])
      else {
        this.open.delete(role.id)
        await open.tx.commit()
        await open.producer.disconnect().catch(() => undefined)
        // Committed whatever comes next: a consumer that finds it still recorded open finds the marker.
        await this.record(role.id, null).catch(() => undefined)
      }
    } catch (error) {
      await this.abort(role.id)
      const cause = this.log.connection.error(error)
      if (FENCED.has(rootKafkaError(error).type ?? '')) {
        // Open past txnTimeoutMs: the brokers aborted it, or a consumer did (and reported it): nothing of it is ever applied.
        const why = `transaction ${JSON.stringify(role.id)} was aborted (no marker within txnTimeoutMs, ${this.log.settings.txnTimeoutMs} ms): its parts are never applied`
        return { id: m.id, partition, offset: -1, duplicate: false, error: new InvalidRecordError(why, { code: 'WAL_TXN_REFUSED', cause }) }
      }
      return { id: m.id, partition, offset: -1, duplicate: false, error: role.marker ? new DurabilityUnknownError(`committing transaction ${role.id}: ${cause.message}`, { cause }) : cause }
    }
    return { id: m.id, partition, offset, duplicate: false }
  }

  private async abort(id: string): Promise<void> {
    const open = this.open.get(id)
    this.open.delete(id)
    if (!open) return
    const { tx, producer } = await open.catch(() => ({ tx: undefined, producer: undefined }))
    await tx?.abort().catch(() => undefined)
    await producer?.disconnect().catch(() => undefined)
  }

  /** Transactions without a marker when the writer closes: aborted, nothing of them is ever read. */
  async close(): Promise<void> {
    for (const id of [...this.open.keys()]) await this.abort(id)
  }

  /** A committed transaction, from its marker: its parts read where the marker says they are. */
  async info(id: string, marker: Mutation): Promise<TxnInfo | undefined> {
    let positions: Array<[number, number]>
    try {
      positions = (JSON.parse(marker.payload.encoding === 'json' ? marker.payload.json : '') as { parts: Array<[number, number]> }).parts
      if (!Array.isArray(positions) || !positions.every((p) => Array.isArray(p) && p.length === 2 && p.every((n) => Number.isSafeInteger(n) && n >= 0))) return undefined
    } catch {
      return undefined
    }
    const parts: TxnInfo['parts'] = []
    for (const [seq, [partition, offset]] of positions.entries()) {
      let found: LogRecord | undefined
      for await (const record of this.log.read({ from: new Map([[partition, offset]]), until: new Map([[partition, offset + 1]]) })) if (record.offset === offset) found = record
      if (found !== undefined) parts.push({ seq, record: found })
    }
    return { id, state: 'committed', openedAtMs: marker.createdAtMs, committedAtMs: marker.createdAtMs, abortedAtMs: null, partCount: positions.length, parts, marker: null }
  }

  /** Records a transaction open or aborted, or (null) committed: a tombstone, which compaction removes. */
  private async record(id: string, state: TxnState | null): Promise<void> {
    await this.log.connection.send([{ topic: this.log.topics.state, messages: [{ key: `${STATE_PREFIX}${id}`, value: (state === null ? null : JSON.stringify(state)) as string, headers: {}, timestamp: String(Date.now()) }] }])
  }

  /** What the state topic was read to so far (read on from there: a consumer reads it at each heartbeat). */
  private readonly known = { txns: new Map<string, TxnState>(), filed: new Set<string>(), next: 0 }

  /**
   * The transactions the state topic records open or aborted, and which (target, id) have their
   * txn-aborted entry filed.
   */
  async states(): Promise<{ txns: Map<string, TxnState>; filed: Set<string> }> {
    const { txns, filed } = this.known
    try {
      for await (const { offset, record } of this.log.connection.snapshot(this.log.topics.state, { from: new Map([[0, this.known.next]]) })) {
        this.known.next = offset + 1
        const key = record.key?.toString('utf8')
        if (key === undefined) continue
        if (key.startsWith(STATE_PREFIX)) {
          const id = key.slice(STATE_PREFIX.length)
          if (record.value === null) txns.delete(id)
          else txns.set(id, JSON.parse(record.value.toString('utf8')) as TxnState)
        } else if (key.startsWith(FILED_PREFIX) && record.value !== null) filed.add(key)
      }
    } catch (error) {
      throw this.log.connection.error(error)
    }
    return { txns, filed }
  }

  /**
   * Transactions open for longer than `timeoutMs` whose marker would be in one of `partitions`: their
   * writer fenced, those without a marker recorded aborted, and one txn-aborted DLQ entry filed for
   * `target` for each aborted one not filed yet (also those another target's consumer aborted). Returns
   * the ones this call filed.
   */
  async abortExpired(target: string, partitions: readonly number[], nowMs: number, timeoutMs: number): Promise<AbortedTxn[]> {
    let states: { txns: Map<string, TxnState>; filed: Set<string> }
    try {
      states = await this.states()
    } catch {
      return []
    }
    const { txns, filed } = states
    const mine = [...txns.values()].filter((t) => partitions.includes(this.log.partitionOf(t.txn)))
    const out: AbortedTxn[] = []
    for (const t of mine) {
      try {
        const aborted = await this.abortOne(target, t, txns, filed, nowMs, timeoutMs)
        if (aborted !== undefined) out.push(aborted)
      } catch {
        // Not doable now (a broker restarting): tried again at the next heartbeat (what is filed is
        // filed whole, in one Kafka transaction), as a lease renewal would be.
        break
      }
    }
    return out
  }

  /** One transaction of abortExpired: the transaction, when this call filed its txn-aborted entry for `target`. */
  private async abortOne(target: string, state: TxnState, txns: Map<string, TxnState>, filed: Set<string>, nowMs: number, timeoutMs: number): Promise<AbortedTxn | undefined> {
    let t = state
    if (t.state === 'open' && t.openedAtMs < nowMs - timeoutMs) {
      // Fenced: whatever its writer left open is aborted now, and a marker it sends later is refused.
      await this.once(t.txn, async () => undefined, () => false)
      // Its marker, if it was committed (record timestamps are createdAt, which a producer may set: the
      // whole partition is searched; this is rare: only a writer that died, or one that lost its tombstone).
      let blocked = false
      if ((await this.log.transaction(t.txn, undefined, { markerOnly: true, onBlocked: () => (blocked = true) })) !== undefined) {
        await this.record(t.txn, null)
        txns.delete(t.txn)
        return undefined
      }
      // Another Kafka transaction still open in that partition hides what is past it: decided later.
      if (blocked) return undefined
      t = { ...t, state: 'aborted', abortedAtMs: nowMs }
      await this.record(t.txn, t)
      txns.set(t.txn, t)
    }
    const key = filedKey(target, t)
    if (t.state !== 'aborted' || filed.has(key)) return undefined
    const aborted: AbortedTxn = { id: t.txn, partCount: 0, openedAtMs: t.openedAtMs, partition: this.log.partitionOf(t.txn) }
    const limit = await this.log.connection.maxMessageBytes(this.log.topics.dlq)
    const wrote = await this.once(
      `txn-aborted.${target}.${t.txn}`,
      async (tx) => {
        // Under this transactionalId, any other consumer filing it is fenced: what it filed is readable now.
        if ((await this.states()).filed.has(key)) return false
        const dead = abortedTxnEntry(this.log.namespace, aborted, timeoutMs, nowMs)
        const marked: OutgoingRecord = { key, value: JSON.stringify({ txn: t.txn, target, atMs: nowMs }), headers: {}, timestamp: String(nowMs) }
        const outcomes = await this.log.connection.sendRecords(
          [
            { topic: this.log.topics.dlq, messages: chunkedRecords(dlqRecord(target, dead), limit) },
            { topic: this.log.topics.state, messages: [marked] },
          ],
          tx,
        )
        for (const outcome of outcomes.flat()) if (outcome.error) throw outcome.error
        return true
      },
      (ok) => ok,
    )
    return wrote ? aborted : undefined
  }
}
