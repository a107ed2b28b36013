/**
 * The DLQ of a Kafka namespace: a one-partition topic whose records are the dead mutations as the log
 * holds them (key, payload, headers), with why they died in `wal-dlq-*` headers — readable by any Kafka
 * client. Each write sets those headers anew, so they never pile up across replays. A topic cannot
 * delete one record, so entries removed (replayed, purged) or parked are marked in the namespace's
 * compacted state topic, with the audit trail.
 *
 * An entry's seq is its offset + 1. The same mutation dead-lettered twice for one target (a consumer that
 * crashed before committing redoes it) shows once: the newest entry counts.
 */
import { parseTimeHeader } from '../../envelope/created-at.js'
import type { ErrorClass, LogRecord } from '../../envelope/envelope.js'
import { newMutationId } from '../../envelope/id.js'
import type { AuditRecord, DeadLetter, DeadLetterQueue, DlqEntry, DlqQuery } from '../backend.js'
import type { KafkaLog } from './kafka-log.js'
import { decodeRecord, encodeRecord, type IncomingRecord, type OutgoingRecord } from './record-codec.js'
import { Reassembler } from '../chunks.js'

export const DLQ_HEADER = {
  target: 'wal-dlq-target',
  partition: 'wal-dlq-partition',
  errorClass: 'wal-dlq-error-class',
  code: 'wal-dlq-code',
  message: 'wal-dlq-message',
  at: 'wal-dlq-at',
} as const

/** The DLQ record of a mutation that died at a target. */
export function dlqRecord(target: string, d: DeadLetter): OutgoingRecord {
  return encodeRecord(d.mutation, {
    [DLQ_HEADER.target]: target,
    [DLQ_HEADER.partition]: String(d.partition),
    [DLQ_HEADER.errorClass]: d.errorClass,
    [DLQ_HEADER.code]: d.code,
    [DLQ_HEADER.message]: d.message.slice(0, 1000),
    [DLQ_HEADER.at]: new Date(d.atMs).toISOString(),
  })
}

function header(record: IncomingRecord, name: string): string | undefined {
  const value = record.headers?.[name]
  const one = Array.isArray(value) ? value.at(-1) : value
  return one === undefined ? undefined : typeof one === 'string' ? one : one.toString('utf8')
}

interface State {
  removed: Set<number>
  parked: Set<number>
  audit: AuditRecord[]
}

export class KafkaDeadLetterQueue implements DeadLetterQueue {
  constructor(private readonly log: KafkaLog) {}

  private async state(): Promise<State> {
    const latest = new Map<string, string | null>()
    for await (const { record } of this.log.connection.snapshot(this.log.topics.state)) {
      const key = record.key?.toString('utf8')
      if (key !== undefined) latest.set(key, record.value === null ? null : record.value.toString('utf8'))
    }
    const state: State = { removed: new Set(), parked: new Set(), audit: [] }
    for (const [key, value] of latest) {
      if (value === null) continue
      const [kind, rest] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)]
      if (kind === 'dlq-removed') state.removed.add(Number(rest))
      else if (kind === 'dlq-parked') state.parked.add(Number(rest))
      else if (kind === 'audit') state.audit.push(JSON.parse(value) as AuditRecord)
    }
    state.audit.sort((a, b) => a.atMs - b.atMs)
    return state
  }

  async entries(query: DlqQuery): Promise<DlqEntry[]> {
    const state = await this.state()
    const from = new Map([[0, query.afterSeq ?? 0]])
    const live = new Map<string, DlqEntry>()
    // A large mutation was dead-lettered in chunks: an entry is the record put together, at its last chunk.
    const reassembler = new Reassembler(`topic ${this.log.topics.dlq}`)
    const raw = new Map<number, IncomingRecord>()
    const read = async function* (snapshot: AsyncIterable<{ offset: number; record: IncomingRecord }>, topic: string, namespace: string): AsyncIterable<{ offset: number; record: IncomingRecord; mutation: LogRecord }> {
      for await (const { offset, record } of snapshot) {
        raw.set(offset, record)
        for (const whole of reassembler.push(decodeRecord(record, topic, 0, namespace))) {
          const last = raw.get(whole.offset)!
          for (const o of raw.keys()) if (o <= whole.offset) raw.delete(o)
          yield { offset: whole.offset, record: last, mutation: whole }
        }
      }
    }
    for await (const { offset, record, mutation } of read(this.log.connection.snapshot(this.log.topics.dlq, { partitions: [0], from }), this.log.topics.dlq, this.log.namespace)) {
      const seq = offset + 1
      const target = header(record, DLQ_HEADER.target)
      if (target === undefined || state.removed.has(seq)) continue
      const { partition: _p, offset: _o, appendedAtMs: _a, ...rest } = mutation
      const entry: DlqEntry = {
        seq,
        target,
        partition: Number(header(record, DLQ_HEADER.partition) ?? 0),
        mutation: rest,
        errorClass: (header(record, DLQ_HEADER.errorClass) ?? 'fatal') as ErrorClass,
        code: header(record, DLQ_HEADER.code) ?? '',
        message: header(record, DLQ_HEADER.message) ?? '',
        deadAtMs: parseTimeHeader(header(record, DLQ_HEADER.at) ?? '') || mutation.appendedAtMs,
        parked: state.parked.has(seq),
      }
      const identity = `${target}\u0000${mutation.id}`
      live.delete(identity)
      live.set(identity, entry)
    }
    const matches = [...live.values()]
      .filter(
        (e) =>
          (query.target === undefined || e.target === query.target) &&
          (query.errorClass === undefined || e.errorClass === query.errorClass) &&
          (query.key === undefined || e.mutation.key === query.key) &&
          (query.id === undefined || e.mutation.id === query.id) &&
          (query.sinceMs === undefined || e.deadAtMs >= query.sinceMs) &&
          (query.untilMs === undefined || e.deadAtMs < query.untilMs),
      )
      .sort((a, b) => a.seq - b.seq)
    return query.limit === undefined ? matches : matches.slice(0, Math.max(0, Math.floor(query.limit)))
  }

  private async mark(kind: string, seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return
    await this.log.connection.send([
      { topic: this.log.topics.state, messages: seqs.map((seq) => ({ key: `${kind}:${seq}`, value: '1', headers: {}, timestamp: String(Date.now()) })) },
    ])
  }

  async remove(seqs: readonly number[]): Promise<number> {
    if (seqs.length === 0) return 0
    const wanted = new Set(seqs)
    const present = (await this.entries({})).filter((e) => wanted.has(e.seq)).map((e) => e.seq)
    await this.mark('dlq-removed', present)
    return present.length
  }

  async park(seqs: readonly number[]): Promise<void> {
    await this.mark('dlq-parked', seqs)
  }

  async recordAudit(record: AuditRecord): Promise<void> {
    await this.log.connection.send([
      { topic: this.log.topics.state, messages: [{ key: `audit:${newMutationId(record.atMs)}`, value: JSON.stringify(record), headers: {}, timestamp: String(record.atMs) }] },
    ])
  }

  async audit(limit: number): Promise<AuditRecord[]> {
    return (await this.state()).audit.slice(-limit)
  }

  async close(): Promise<void> {
    // The log owns the connection.
  }
}
