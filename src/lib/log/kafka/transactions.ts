/**
 * Transactions on a Kafka namespace (see txn/txn.ts): each transaction's parts and marker are written in
 * one Kafka transaction of a transactional producer of its own (transactionalId `wal.<topic>.<txn>`),
 * committed when the marker is written. Consumers read `read_committed`, so they see the parts and the
 * marker together or not at all: a producer that dies before its marker leaves nothing to apply (the
 * brokers abort its Kafka transaction after txnTimeoutMs). The marker's payload lists where each part
 * is, `{"txn": ID, "parts": [[partition, offset], …]}`: that is how its consumer finds them.
 */
import type { Mutation, LogRecord } from '../../envelope/envelope.js'
import { DurabilityUnknownError, InvalidRecordError } from '../../errors.js'
import { markMarker, txnOf } from '../../txn/txn.js'
import type { AppendResult, TxnInfo } from '../backend.js'
import type { KafkaLog } from './kafka-log.js'
import { encodeRecord } from './record-codec.js'

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
        const producer = this.log.connection.kafka.producer({
          transactionalId: `wal.${this.log.topics.log}.${id}`,
          idempotent: true,
          maxInFlightRequests: 1,
          transactionTimeout: this.log.settings.txnTimeoutMs,
          allowAutoTopicCreation: false,
        })
        await producer.connect()
        return { producer, tx: await producer.transaction(), parts: [] }
      })()
      this.open.set(id, open)
      open.catch(() => this.open.delete(id))
    }
    return open
  }

  /** Writes one part or marker inside its transaction; the marker commits it. */
  async append(m: Mutation): Promise<AppendResult> {
    const role = txnOf(m)!
    let open: Open
    try {
      open = await this.begin(role.id)
    } catch (error) {
      throw this.log.connection.error(error)
    }
    const partition = this.log.partitionOf(m.key)
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
      }
    } catch (error) {
      await this.abort(role.id)
      const cause = this.log.connection.error(error)
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
}
