/**
 * What `wal ns show` asks of a target's consumer state, on SQS: there are no offsets, leases or schedule
 * to read — the queue itself is the state. Lag is what waits in the shard queues, scheduled what SQS
 * holds delayed, dead letters what the DLQ holds (for every target: they share it). The pipeline itself
 * does not use this: SQS consumers run their own message-based loop (see consumer.ts).
 */
import { UsageError } from '../../errors.js'
import type { ConsumerStore, HistoryEvent, ScheduledMutation } from '../backend.js'
import type { SqsLog } from './sqs-log.js'

export class SqsConsumerState implements ConsumerStore {
  constructor(
    private readonly log: SqsLog,
    readonly target: string,
  ) {}

  private unsupported(): never {
    throw new UsageError('SQS namespaces have no offsets, leases or schedule: their consumers use the queues themselves')
  }

  async claim(): Promise<{ owned: number[]; wanted: number[] }> {
    this.unsupported()
  }

  async release(): Promise<void> {}

  /** Offsets do not exist on SQS: 0, so that lag (high − committed) is what waits in each queue. */
  async committed(partitions: readonly number[]): Promise<Map<number, number>> {
    return new Map(partitions.map((p) => [p, 0]))
  }

  async commit(): Promise<{ lost: number[] }> {
    this.unsupported()
  }

  async scheduledKeyCounts(): Promise<Map<string, number>> {
    return new Map()
  }

  async dueScheduled(): Promise<ScheduledMutation[]> {
    return []
  }

  async nextDueAtMs(): Promise<number | null> {
    return null
  }

  async story(): Promise<{ history: HistoryEvent[]; scheduled: Array<{ dueAtMs: number; attempts: number }> }> {
    return { history: [], scheduled: [] }
  }

  async counts(): Promise<{ scheduled: number; deadLetters: number }> {
    const queues = this.log.queues
    let scheduled = 0
    for (let shard = 0; shard < this.log.partitions; shard++) {
      const a = await queues.attributes((await queues.shard(shard)).url, ['ApproximateNumberOfMessagesDelayed'])
      scheduled += Number(a.ApproximateNumberOfMessagesDelayed ?? 0)
    }
    const dlq = await queues.attributes(await queues.url(queues.names.dlq), ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'])
    return { scheduled, deadLetters: Number(dlq.ApproximateNumberOfMessages ?? 0) + Number(dlq.ApproximateNumberOfMessagesNotVisible ?? 0) }
  }

  /** How far a transaction was applied at this target, as the namespace's state store keeps it. */
  async txnProgress(txn: string): Promise<{ appliedSeq: number; state: 'applying' | 'applied' | 'aborted'; atMs: number } | undefined> {
    return this.log.stateStore(false)?.progress(this.target, txn)
  }

  async leases(): Promise<Array<{ partition: number; owner: string; expiresAtMs: number }>> {
    return []
  }

  async resetOffsets(): Promise<{ fenced: [] }> {
    this.unsupported()
  }

  async close(): Promise<void> {}
}
