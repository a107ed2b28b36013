/**
 * Waiting for a SQLite write lock held by another process (a producer, another consumer, one frozen
 * mid-transaction) without blocking the event loop: SQLite's own busy wait is synchronous, so it is
 * capped at BUSY_WAIT_MS and the rest of the wait is timers. Meanwhile lease heartbeats, other targets
 * and signals keep their turn. Used by the embedded log's consumer state and by the kv target.
 */
import { setTimeout as sleep } from 'node:timers/promises'

/** The longest SQLite may busy-wait (synchronously, on the event loop) at one time; set as busy_timeout. */
export const BUSY_WAIT_MS = 20

/** Whether a node:sqlite error is SQLITE_BUSY or SQLITE_LOCKED (another connection holds the lock). */
export function isBusy(error: unknown): boolean {
  const code = ((error as { errcode?: number } | undefined)?.errcode ?? 0) & 0xff
  return code === 5 || code === 6
}

/**
 * Runs `begin` (which takes a SQLite lock) until it gets the lock or `timeoutMs` passed, waiting between
 * tries with timers (2 ms, doubling up to 100 ms). Throws the last busy error when the time is up.
 */
export async function withLockRetries(begin: () => void, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let waitMs = 2; ; waitMs = Math.min(waitMs * 2, 100)) {
    try {
      begin()
      return
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error
    }
    await sleep(waitMs, undefined, signal === undefined ? undefined : { signal })
  }
}
