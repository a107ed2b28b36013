/** The numbers behind a progress bar, apart from the view: fraction, rate and ETA. */
export interface ProgressState {
  label: string
  /** Units done so far. */
  done: number
  /** Units in all, when known. */
  total: number | null
  /** What a unit is: `mutations`, `bytes`, `entries`. */
  unit: string
  startedAtMs: number
  nowMs: number
  finished: boolean
}

export function fraction(state: ProgressState): number | null {
  if (state.total === null || state.total <= 0) return null
  return Math.min(1, state.done / state.total)
}

/** Units per second since the start (at least over one second, so the first instant does not spike). */
export function ratePerSec(state: ProgressState): number {
  return (state.done * 1000) / Math.max(1000, state.nowMs - state.startedAtMs)
}

/** Seconds left at the rate so far; null when the total or a rate is unknown. */
export function etaSeconds(state: ProgressState): number | null {
  const rate = ratePerSec(state)
  if (state.total === null || rate <= 0) return null
  return Math.max(0, (state.total - state.done) / rate)
}

export function formatEta(seconds: number | null): string {
  if (seconds === null) return '--:--'
  const s = Math.ceil(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const pad = (n: number): string => String(n).padStart(2, '0')
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`
}

export function formatAmount(value: number, unit: string): string {
  if (unit !== 'bytes') return String(Math.round(value))
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let v = value
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`
}

/** The bar itself: `width` cells, full ones for what is done. */
export function bar(frac: number, width: number): string {
  const full = Math.round(frac * width)
  return '█'.repeat(full) + '░'.repeat(width - full)
}
