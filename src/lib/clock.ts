/**
 * wal's clock. WAL_CLOCK_OFFSET (a duration such as `2d`, or milliseconds, optionally negative) moves it,
 * so that delays of days can be exercised without waiting days: the consumer then acts as if that much
 * more time had passed. Leave it unset in production.
 */
import { UsageError } from './errors.js'
import { parseDurationMs } from './time.js'

export type Clock = () => number

export function clockFromEnv(env: NodeJS.ProcessEnv): Clock {
  const text = env.WAL_CLOCK_OFFSET
  if (text === undefined || text === '') return Date.now
  const negative = text.startsWith('-')
  const body = negative ? text.slice(1) : text
  const ms = /^\d+$/.test(body) ? Number(body) : parseDurationMs(body)
  if (ms === undefined) throw new UsageError(`WAL_CLOCK_OFFSET "${text}" is not a duration`, { suggestions: ['use e.g. WAL_CLOCK_OFFSET=2d, or unset it'] })
  const offset = negative ? -ms : ms
  return () => Date.now() + offset
}
