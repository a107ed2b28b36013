/**
 * The DLQ of an SQS namespace: one queue the shard queues redrive to. Messages wal dead-letters itself
 * carry why in `wal-dlq-*` attributes; messages SQS moved (receive count exhausted) are reported as such.
 *
 * SQS cannot list a queue, so the first read takes a snapshot: it receives every message and holds them
 * hidden (SNAPSHOT_HOLD_SECONDS) while the command works, then makes them visible again on close —
 * nothing is consumed for good unless removed. An entry's seq is its place in that snapshot, valid for
 * one command; its `ref` (the MessageId) is what lasts. Parking re-sends the message with a
 * `wal-dlq-parked` attribute (SQS cannot change a message). The audit trail of replays and purges is
 * kept on the machine that ran them, in the state directory.
 */
import type { Message } from '@aws-sdk/client-sqs'
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'

import type { AuditRecord, DeadLetterQueue, DlqEntry, DlqQuery } from '../backend.js'
import { deadLetterContext, MAX_BATCH_ENTRIES } from './codec.js'
import type { SqsLog } from './sqs-log.js'

/** How long a snapshot keeps the DLQ's messages hidden, at most (they come back by themselves after). */
const SNAPSHOT_HOLD_SECONDS = 300

interface Held {
  entry: DlqEntry
  message: Message
}

export class SqsDeadLetterQueue implements DeadLetterQueue {
  private snapshot: Held[] | undefined
  private readonly released = new Set<number>()

  private constructor(
    private readonly log: SqsLog,
    private readonly url: string,
    private readonly maxReceiveCount: number | null,
    private readonly auditPath: string,
  ) {}

  static async open(log: SqsLog, auditPath: string): Promise<SqsDeadLetterQueue> {
    const url = await log.queues.url(log.queues.names.dlq)
    return new SqsDeadLetterQueue(log, url, log.sqs.maxReceiveCount, auditPath)
  }

  private loading: Promise<Held[]> | undefined

  /** The snapshot, taken once however many ask at once (a second receive would find it hidden). */
  private load(): Promise<Held[]> {
    if (this.snapshot) return Promise.resolve(this.snapshot)
    this.loading ??= this.take().finally(() => (this.loading = undefined))
    return this.loading
  }

  private async take(): Promise<Held[]> {
    const held: Held[] = []
    const seen = new Set<string>()
    for (;;) {
      const messages = await this.log.queues.receive(this.url, { max: MAX_BATCH_ENTRIES, visibilitySeconds: SNAPSHOT_HOLD_SECONDS, waitSeconds: 0 })
      const fresh = messages.filter((m) => !seen.has(m.MessageId!))
      if (fresh.length === 0) break
      for (const message of fresh) {
        seen.add(message.MessageId!)
        const record = this.log.decode(message, { queue: this.log.queues.names.dlq, shard: 0, namespace: this.log.namespace })
        const why = deadLetterContext(message, record, this.maxReceiveCount)
        const { partition: _p, offset: _o, appendedAtMs: _a, ...mutation } = record
        held.push({
          message,
          entry: {
            seq: 0,
            ref: message.MessageId!,
            target: why.target,
            ...(why.replayTarget === undefined ? {} : { replayTarget: why.replayTarget }),
            partition: why.shard,
            mutation,
            errorClass: why.errorClass,
            code: why.code,
            message: why.message,
            deadAtMs: why.atMs,
            parked: why.parked ?? false,
          },
        })
      }
    }
    held.sort((a, b) => a.entry.deadAtMs - b.entry.deadAtMs || a.entry.ref!.localeCompare(b.entry.ref!))
    held.forEach((h, i) => (h.entry.seq = i + 1))
    this.snapshot = held
    return held
  }

  async entries(query: DlqQuery): Promise<DlqEntry[]> {
    const matches = (await this.load())
      .filter((h) => !this.released.has(h.entry.seq))
      .map((h) => h.entry)
      .filter(
        (e) =>
          (query.afterSeq === undefined || e.seq > query.afterSeq) &&
          (query.target === undefined || e.target === query.target) &&
          (query.errorClass === undefined || e.errorClass === query.errorClass) &&
          (query.key === undefined || e.mutation.key === query.key) &&
          (query.id === undefined || e.mutation.id === query.id) &&
          (query.sinceMs === undefined || e.deadAtMs >= query.sinceMs) &&
          (query.untilMs === undefined || e.deadAtMs < query.untilMs),
      )
    return query.limit === undefined ? matches : matches.slice(0, Math.max(0, Math.floor(query.limit)))
  }

  private async held(seqs: readonly number[]): Promise<Held[]> {
    const wanted = new Set(seqs)
    return (await this.load()).filter((h) => wanted.has(h.entry.seq) && !this.released.has(h.entry.seq))
  }

  async remove(seqs: readonly number[]): Promise<number> {
    const doomed = await this.held(seqs)
    await this.log.queues.delete(this.url, doomed.map((h) => h.message.ReceiptHandle!))
    for (const h of doomed) this.released.add(h.entry.seq)
    return doomed.length
  }

  /** Re-sends each message marked as parked, then deletes the original. */
  async park(seqs: readonly number[]): Promise<void> {
    const parked = (await this.held(seqs)).filter((h) => !h.entry.parked)
    if (parked.length === 0) return
    const entries = parked.map((h) =>
      this.log.outgoing(h.entry.mutation, {
        fifo: this.log.sqs.fifo,
        dead: { target: h.entry.target, errorClass: h.entry.errorClass, code: h.entry.code, message: h.entry.message, atMs: h.entry.deadAtMs, shard: h.entry.partition, parked: true },
        deduplicationId: `parked:${h.entry.ref}`,
        groupId: `parked:${h.entry.ref}`,
      }),
    )
    const sent = await this.log.queues.sendAll(this.url, entries)
    const failed = sent.find((s) => s.error)
    if (failed) throw failed.error
    await this.log.queues.delete(this.url, parked.map((h) => h.message.ReceiptHandle!))
    for (const h of parked) this.released.add(h.entry.seq)
  }

  async recordAudit(record: AuditRecord): Promise<void> {
    mkdirSync(dirname(this.auditPath), { recursive: true })
    appendFileSync(this.auditPath, `${JSON.stringify(record)}\n`)
  }

  async audit(limit: number): Promise<AuditRecord[]> {
    let text = ''
    try {
      text = readFileSync(this.auditPath, 'utf8')
    } catch {
      return []
    }
    return text
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as AuditRecord)
      .slice(-limit)
  }

  /** Makes what the snapshot held visible again. */
  async close(): Promise<void> {
    const held = (this.snapshot ?? []).filter((h) => !this.released.has(h.entry.seq))
    this.snapshot = undefined
    await this.log.queues.changeVisibility(this.url, held.map((h) => h.message.ReceiptHandle!), 0).catch(() => undefined)
  }
}
