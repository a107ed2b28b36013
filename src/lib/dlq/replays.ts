/**
 * The loop guard's counter: each copy a DLQ replay puts back into the log carries how often the
 * mutation was replayed, so each delivery of a mutation (0 as produced, then 1, 2, …) can be told apart
 * (by the loop guard, by `wal explain`).
 */
import type { Mutation } from '../envelope/envelope.js'

/** The header that counts how often a mutation was replayed from a DLQ. */
export const REPLAYS_HEADER = 'wal-replays'

/** Which copy of a mutation this is: 0 as produced, n after its n-th replay from a DLQ. */
export function replaysOf(mutation: Pick<Mutation, 'headers'>): number {
  const n = Number(mutation.headers[REPLAYS_HEADER] ?? 0)
  return Number.isInteger(n) && n > 0 ? n : 0
}
