/** A token bucket: at most `perSecond` takes per second on average, with bursts of up to one second's worth. */
import { setTimeout as sleep } from 'node:timers/promises'

export class RateLimiter {
  private tokens: number
  private last = performance.now()
  private readonly capacity: number

  constructor(private readonly perSecond: number) {
    this.capacity = Math.max(1, perSecond)
    this.tokens = this.capacity
  }

  /** Waits for a token; rejects if `signal` aborts first. */
  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const now = performance.now()
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.perSecond)
      this.last = now
      if (this.tokens >= 1) {
        this.tokens -= 1
        return
      }
      await sleep(((1 - this.tokens) / this.perSecond) * 1000, undefined, { signal })
    }
  }
}
