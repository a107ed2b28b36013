/** Records per second over a sliding window, for live views' footers and progress bars. */
export class RateMeter {
  private readonly samples: Array<{ atMs: number; count: number }> = []

  /** @param windowMs how far back the rate looks; a rate over the last seconds follows bursts and lulls. */
  constructor(private readonly windowMs = 10_000) {}

  add(count: number, atMs: number): void {
    if (count > 0) this.samples.push({ atMs, count })
    this.prune(atMs)
  }

  /** Per second, over the window (or over the time since the first sample, when that is shorter but at least 1 s). */
  perSecond(nowMs: number, startedAtMs: number): number {
    this.prune(nowMs)
    const total = this.samples.reduce((n, s) => n + s.count, 0)
    const spanMs = Math.min(this.windowMs, Math.max(1000, nowMs - startedAtMs))
    return (total * 1000) / spanMs
  }

  private prune(nowMs: number): void {
    while (this.samples.length > 0 && this.samples[0]!.atMs <= nowMs - this.windowMs) this.samples.shift()
  }
}
