/**
 * What a consumer recorded since its last commit, besides offsets: schedule changes, dead letters,
 * history and transaction progress, each with the partition it belongs to, so that a partition lost
 * meanwhile (fenced) drops its part and the rest is still committed.
 */
import type { ConsumerCommit, DeadLetter, HistoryEvent } from '../log/backend.js'

/** Changes recorded since the last commit, each with the partition it belongs to (dropped with it when fenced). */
export interface PendingChange {
  schedule: ConsumerCommit['schedule']
  reschedule: Array<ConsumerCommit['reschedule'][number] & { partition: number }>
  unschedule: Array<{ seq: number; partition: number }>
  deadLetters: DeadLetter[]
  history: Array<{ partition: number; event: HistoryEvent }>
  /** Keys whose scheduled head was dealt with: no longer busy once this is committed. */
  keys: Array<{ key: string; partition: number; epoch: number }>
  /** How far transactions were applied, by the partition of their marker. */
  txnProgress: Array<NonNullable<ConsumerCommit['txnProgress']>[number] & { partition: number }>
}

export function emptyChange(): PendingChange {
  return { schedule: [], reschedule: [], unschedule: [], deadLetters: [], history: [], keys: [], txnProgress: [] }
}

export function withoutPartitions(change: PendingChange, drop: ReadonlySet<number>): PendingChange {
  return {
    schedule: change.schedule.filter((e) => !drop.has(e.partition)),
    reschedule: change.reschedule.filter((e) => !drop.has(e.partition)),
    unschedule: change.unschedule.filter((e) => !drop.has(e.partition)),
    deadLetters: change.deadLetters.filter((e) => !drop.has(e.partition)),
    history: change.history.filter((e) => !drop.has(e.partition)),
    keys: change.keys.filter((e) => !drop.has(e.partition)),
    txnProgress: change.txnProgress.filter((e) => !drop.has(e.partition)),
  }
}

export function mergeChanges(first: PendingChange, then: PendingChange): PendingChange {
  return {
    schedule: [...first.schedule, ...then.schedule],
    reschedule: [...first.reschedule, ...then.reschedule],
    unschedule: [...first.unschedule, ...then.unschedule],
    deadLetters: [...first.deadLetters, ...then.deadLetters],
    history: [...first.history, ...then.history],
    keys: [...first.keys, ...then.keys],
    txnProgress: [...first.txnProgress, ...then.txnProgress],
  }
}

export function partitionsOf(change: PendingChange, offsets: ReadonlyMap<number, number>): Set<number> {
  const touched = new Set(offsets.keys())
  for (const list of [change.schedule, change.reschedule, change.unschedule, change.deadLetters, change.history, change.txnProgress]) for (const e of list) touched.add(e.partition)
  return touched
}
