/**
 * Pauses a target after an infrastructure error (it is down or unreachable) instead of burning the
 * attempts of every mutation. While open, applies wait; after the probe interval one apply goes through
 * as a probe: success closes the circuit, another infrastructure error reopens it for twice as long.
 */
import { setTimeout as sleep } from 'node:timers/promises'

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface CircuitBreakerOptions {
  probeIntervalMs: number
  maxProbeIntervalMs: number
}

export class CircuitBreaker {
  private stateValue: CircuitState = 'closed'
  private intervalMs: number
  private openUntil = 0
  private probing = false
  /** Times the circuit opened. */
  opened = 0

  constructor(private readonly options: CircuitBreakerOptions) {
    this.intervalMs = options.probeIntervalMs
  }

  get state(): CircuitState {
    return this.stateValue
  }

  /** Resolves when an apply may go ahead; true if it is the probe. */
  async allow(signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      if (this.stateValue === 'closed') return false
      const wait = this.openUntil - Date.now()
      if (wait <= 0 && !this.probing) {
        this.stateValue = 'half-open'
        this.probing = true
        return true
      }
      await sleep(Math.max(wait, 50), undefined, { signal })
    }
  }

  succeeded(probe: boolean): void {
    if (!probe && this.stateValue !== 'half-open') return
    this.stateValue = 'closed'
    this.probing = false
    this.intervalMs = this.options.probeIntervalMs
  }

  /** An infrastructure error: open (or reopen, backing off the probe interval). */
  failed(probe: boolean): void {
    if (this.stateValue === 'closed') {
      this.opened++
      this.intervalMs = this.options.probeIntervalMs
    } else if (probe) {
      this.intervalMs = Math.min(this.options.maxProbeIntervalMs, this.intervalMs * 2)
    } else if (this.stateValue === 'open') return
    this.stateValue = 'open'
    this.probing = false
    this.openUntil = Date.now() + this.intervalMs
  }

  /** A probe that ended without an infrastructure verdict (e.g. a fatal error): let another try. */
  released(probe: boolean): void {
    if (probe) {
      this.stateValue = 'closed'
      this.probing = false
    }
  }
}
