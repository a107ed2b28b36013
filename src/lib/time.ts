/** Durations and points in time as operators type them: `90s`, `15m`, `3d`, `1h30m`, ISO 8601. */

const unitMs: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}

const durationPattern = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/
const partPattern = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g

/** Parses `90s`, `15m`, `3d`, `1h30m`, `250ms` into milliseconds; undefined when it is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  const trimmed = text.trim()
  if (!durationPattern.test(trimmed)) return undefined
  let total = 0
  for (const [, amount, unit] of trimmed.matchAll(partPattern)) total += Number(amount) * unitMs[unit!]!
  return Math.round(total)
}

/** The earliest time wal stores (createdAt, notBefore, failure times): the Unix epoch. */
export const MIN_TIME_MS = 0
/** The latest: 9999-12-31T23:59:59.999Z, which every backend and reader can hold and print. */
export const MAX_TIME_MS = 253_402_300_799_999

/** Whether epoch milliseconds are within the range wal stores. */
export function timeInRange(ms: number): boolean {
  return ms >= MIN_TIME_MS && ms <= MAX_TIME_MS
}

const ISO_PATTERN = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?(Z|[+-](\d{2}):?(\d{2}))?$/i
const STRICT_ISO_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/i

function daysInMonth(year: number, month: number): number {
  return month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31
}

/** Epoch ms of a matched ISO date-time whose every part is on the calendar (no 30 February), else undefined. */
function calendarMs(m: RegExpExecArray, text: string): number | undefined {
  const [year, month, day, hour = 0, minute = 0, second = 0] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((p) => (p === undefined ? undefined : Number(p)))
  if (month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth(year!, month!)) return undefined
  if (hour! > 23 || minute! > 59 || second! > 59) return undefined
  const zoneHours = m[9] === undefined ? 0 : Number(m[9])
  const zoneMinutes = m[10] === undefined ? 0 : Number(m[10])
  if (zoneHours > 23 || zoneMinutes > 59) return undefined
  const hasZone = m[8] !== undefined
  const ms = Date.parse(hasZone ? text : `${text.replace(' ', 'T')}Z`)
  return Number.isNaN(ms) ? undefined : ms
}

/**
 * Parses an ISO 8601 date-time as operators type it (a date, a space for the T, no zone meaning UTC)
 * into epoch milliseconds; undefined when it is not one or names a day that does not exist.
 */
export function parseIsoTimeMs(text: string): number | undefined {
  const trimmed = text.trim()
  const m = ISO_PATTERN.exec(trimmed)
  return m ? calendarMs(m, trimmed) : undefined
}

/**
 * Parses a time in an envelope: ISO 8601 with date, time to the second and a zone
 * (`2026-12-01T09:00:00Z`, `…:00.123456+02:00`), and nothing looser. Undefined when it is not one.
 */
export function parseStrictIsoTimeMs(text: string): number | undefined {
  const m = STRICT_ISO_PATTERN.exec(text)
  return m ? calendarMs(m, text) : undefined
}

/**
 * A point in time: an ISO date-time, or a duration meaning "that long ago" (`15m` = 15 minutes ago).
 * Undefined when the text is neither.
 */
export function parsePointInTimeMs(text: string, nowMs: number): number | undefined {
  const iso = parseIsoTimeMs(text)
  if (iso !== undefined) return iso
  const ago = parseDurationMs(text.replace(/^-/, '').replace(/\s*ago$/, ''))
  return ago === undefined ? undefined : nowMs - ago
}

/** `1500` → `1.5s`, for messages. */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)}s`
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(1)}m`
  if (ms < 86_400_000) return `${+(ms / 3_600_000).toFixed(1)}h`
  return `${+(ms / 86_400_000).toFixed(1)}d`
}

/** The longest delay one Node timer takes (about 24.8 days); longer ones would fire at once, with a warning. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Runs `fn` after `ms`, however long (re-armed in steps a timer takes); `clear()` cancels it. */
export function longTimeout(fn: () => void, ms: number): { clear(): void } {
  const dueMs = Date.now() + ms
  let timer: NodeJS.Timeout
  const arm = (): void => {
    const left = dueMs - Date.now()
    timer = setTimeout(left > MAX_TIMER_MS ? arm : fn, Math.max(0, Math.min(left, MAX_TIMER_MS)))
  }
  arm()
  return { clear: () => clearTimeout(timer) }
}
