/**
 * createdAt with microseconds. Targets use a mutation's createdAt as its write time (Cassandra's
 * `USING TIMESTAMP` is in microseconds), so two mutations of one key must never share one: with a
 * millisecond clock, a stdin chunk of `wal produce` stamps many mutations in the same millisecond, and
 * Cassandra would then keep the larger value instead of the later write. createdAt is therefore a
 * number of milliseconds with up to three decimals (whole microseconds), strictly increasing within a
 * process.
 *
 * On the wire (the envelope's ISO time), the extra digits are written only when there are any:
 * `2026-12-01T09:00:00.123Z`, or `2026-12-01T09:00:00.123456Z`.
 */

/** Hands out createdAt values (ms with µs decimals) that strictly increase, even when the clock stands still. */
export class CreatedAtClock {
  private lastMicros = 0

  constructor(private readonly nowMs: () => number = Date.now) {}

  /** The next createdAt: now, or one microsecond after the last one handed out, whichever is later. */
  next(): number {
    const micros = Math.max(Math.round(this.nowMs() * 1000), this.lastMicros + 1)
    this.lastMicros = micros
    return micros / 1000
  }
}

/** Whole microseconds since the epoch of a createdAt (exact: the value has at most three decimals). */
export function createdAtMicros(createdAtMs: number): number {
  return Math.round(createdAtMs * 1000)
}

// The last two milliseconds formatted, and their text: records read in order share milliseconds (a
// produce batch is stamped within a few), and a Date per record was a tenth of a file consumer's time.
// Two, because an envelope line formats two times (createdAt, then appendedAt), which one slot would
// make miss at every call.
let lastMs = Number.NaN
let lastIso = ''
let otherMs = Number.NaN
let otherIso = ''

/** ISO 8601 with three fraction digits, as Date#toISOString, remembering the last two. */
export function isoTime(ms: number): string {
  if (ms === lastMs) return lastIso
  if (ms !== otherMs) {
    otherIso = new Date(ms).toISOString()
    otherMs = ms
  }
  // The one just asked for becomes the last; the other slot keeps the one asked for before it.
  const iso = otherIso
  otherMs = lastMs
  otherIso = lastIso
  lastMs = ms
  lastIso = iso
  return iso
}

/** ISO 8601 with three fraction digits, or six when the time has microseconds. */
export function formatCreatedAt(createdAtMs: number): string {
  const micros = createdAtMicros(createdAtMs)
  const ms = Math.floor(micros / 1000)
  const iso = isoTime(ms)
  const extra = micros - ms * 1000
  return extra === 0 ? iso : `${iso.slice(0, -1)}${String(extra).padStart(3, '0')}Z`
}

const FRACTION = /\.(\d+)(?=Z|[+-]\d\d:?\d\d$)/i

/** Parses an ISO 8601 time keeping microseconds (Date.parse stops at milliseconds); NaN if it is not a time. */
export function parseCreatedAt(text: string): number {
  const ms = Date.parse(text)
  if (Number.isNaN(ms)) return ms
  const digits = FRACTION.exec(text)?.[1]
  if (digits === undefined || digits.length <= 3) return ms
  // Date.parse kept the milliseconds; add the next three digits (beyond them is below a microsecond).
  const micros = Number(digits.slice(3, 6).padEnd(3, '0'))
  return (ms * 1000 + micros) / 1000
}

/**
 * A time from a `wal-*` header: ISO 8601 as wal writes them (`wal-created-at`, `wal-dlq-at`), or epoch
 * milliseconds with optional decimals as earlier versions wrote them. NaN if it is neither.
 */
export function parseTimeHeader(text: string): number {
  return /^\d+(\.\d+)?$/.test(text) ? Number(text) : parseCreatedAt(text)
}
