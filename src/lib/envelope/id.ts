/** Mutation ids: ULIDs, unique and sortable by creation time. */
import { createHash } from 'node:crypto'

import { monotonicFactory } from 'ulid'

const next = monotonicFactory()

/** A new ULID; monotonic within this process even when the clock stands still. */
export function newMutationId(nowMs: number = Date.now()): string {
  return next(nowMs)
}

/** What a mutation id looks like. */
export const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** A ULID for a record written by another producer: its time from the record, the rest from where it is. */
export function foreignRecordId(topic: string, partition: number, offset: string, timestampMs: number): string {
  let time = ''
  let t = Math.max(0, Math.min(timestampMs, 2 ** 48 - 1))
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time
    t = Math.floor(t / 32)
  }
  const digest = createHash('sha256').update(`${topic}/${partition}/${offset}`).digest()
  let rest = ''
  for (let i = 0; i < 16; i++) rest += CROCKFORD[digest[i]! % 32]
  return time + rest
}
