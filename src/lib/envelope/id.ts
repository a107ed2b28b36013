/** Mutation ids: ULIDs, unique and sortable by creation time. */
import { monotonicFactory } from 'ulid'

const next = monotonicFactory()

/** A new ULID; monotonic within this process even when the clock stands still. */
export function newMutationId(nowMs: number = Date.now()): string {
  return next(nowMs)
}
