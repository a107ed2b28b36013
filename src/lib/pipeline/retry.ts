/** Backoff between attempts: exponential, capped, spread by jitter so retries of a burst do not align. */
import type { RetryPolicy } from '../config/schema.js'

/** Backoffs up to this long are waited out in process; longer ones are scheduled in the log's state. */
export const IN_PROCESS_BACKOFF_MAX_MS = 5_000

/** The wait before attempt `failedAttempt + 1`. `random` is in [0, 1). */
export function backoffMs(policy: RetryPolicy, failedAttempt: number, random: number = Math.random()): number {
  const base = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (failedAttempt - 1))
  const spread = 1 + policy.jitter * (2 * random - 1)
  return Math.max(0, Math.round(Math.min(policy.maxBackoffMs, base * spread)))
}
