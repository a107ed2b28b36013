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

/** Parses an ISO 8601 date-time (with a zone, or UTC when it has none) into epoch milliseconds. */
export function parseIsoTimeMs(text: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.test(text.trim())) return undefined
  const hasZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(text.trim())
  const ms = Date.parse(hasZone ? text.trim() : `${text.trim().replace(' ', 'T')}Z`)
  return Number.isNaN(ms) ? undefined : ms
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
