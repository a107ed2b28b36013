/**
 * Flags that take a duration, a count, a rate, a point in time or a log position: each has a range,
 * written into its help, and a value outside it (or not of its kind) is a usage error (exit 2) naming
 * the flag, the value and the range, raised while the command line is parsed — before any work, and
 * before a value can reach a timer (Node warns about, and shortens, timers beyond 24.8 days).
 *
 * Every command builds such flags here; a new one gets its range here too. The help value (`<duration>`,
 * `<count>`, …) marks the kind in the oclif manifest, which the tests walk to try bad values on every one.
 */
import * as Flags from '@oclif/core/flags'

import { UsageError } from '../errors.js'
import { formatDurationMs, MAX_TIME_MS, MIN_TIME_MS, parseDurationMs, parseIsoTimeMs } from '../time.js'

/** The help values that mark a flag's kind (see test/e2e/flag-values.test.ts). */
export const FLAG_KINDS = ['<duration>', '<count>', '<rate>', '<time>', '<position>'] as const

interface Common {
  description: string
  char?: 'n' | 'k' | 'p' | 'H' | 'f' | 'c' | 'y'
  helpGroup?: string
  exclusive?: string[]
}

function refuse(flag: string, value: string, problem: string, range: string, example: string): never {
  throw new UsageError(`--${flag} ${JSON.stringify(value)} ${problem}: expected ${range}`, { code: 'WAL_FLAG_RANGE', suggestions: [`e.g. --${flag} ${example}`], details: { flag, value, range } })
}

/** The range of a duration flag in words: "a duration from 1s to 10m". */
function durationRange(minMs: number, maxMs: number | 'calendar'): string {
  return `a duration from ${formatDurationMs(minMs)} to ${maxMs === 'calendar' ? 'the end of 9999' : formatDurationMs(maxMs)}`
}

/** A duration in ms within [minMs, maxMs]; `calendar`: as long as now + it ends by 9999-12-31. */
export function checkDuration(flag: string, text: string, minMs: number, maxMs: number | 'calendar', example: string): number {
  const range = durationRange(minMs, maxMs)
  const ms = parseDurationMs(text)
  if (ms === undefined) refuse(flag, text, 'is not a duration (a number and a unit: ms, s, m, h, d, w)', range, example)
  const max = maxMs === 'calendar' ? MAX_TIME_MS - Date.now() : maxMs
  if (!Number.isFinite(ms) || ms < minMs || ms > max) refuse(flag, text, 'is out of range', range, example)
  return ms
}

/** A duration flag: its value stays the text typed (the services parse it), checked against its range. */
export function durationFlag(options: Common & { min: number; max: number | 'calendar'; example: string; default?: string }) {
  const { min, max, example, ...rest } = options
  return Flags.string({
    ...rest,
    description: `${options.description} Range: ${durationRange(min, max).replace(/^a duration /, '')}.`,
    helpValue: '<duration>',
    parse: async (input, _ctx, flag) => (checkDuration(flag.name, input, min, max, example), input),
  })
}

/** A whole number within [min, max], written as digits only. */
export function checkCount(flag: string, text: string, min: number, max: number, example = String(Math.max(min, 1))): number {
  const range = `a whole number from ${min} to ${max}`
  if (!/^\d+$/.test(text.trim())) refuse(flag, text, 'is not a whole number', range, example)
  const n = Number(text.trim())
  if (n < min || n > max) refuse(flag, text, 'is out of range', range, example)
  return n
}

export function countFlag(options: Common & { min: number; max: number; default?: number; example?: string }) {
  const { min, max, example, ...rest } = options
  return Flags.custom<number>({
    ...rest,
    description: `${options.description} Range: ${min} to ${max}.`,
    helpValue: '<count>',
    parse: async (input: string, _ctx, flag) => checkCount(flag.name, input, min, max, example ?? (options.default === undefined ? undefined : String(options.default))),
  })()
}

/** The highest --rate: a million per second. */
export const MAX_RATE_PER_SEC = 1_000_000
const RATE_RANGE = `a rate above 0 and at most ${MAX_RATE_PER_SEC}/s, as N/s, N/m or N/h (100/s, 6000/m)`

/** A rate as `N/s`, `N/m` or `N/h`, above zero and at most MAX_RATE_PER_SEC. */
export function checkRate(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\/(s|m|h)$/.exec(text.trim())
  if (!m) refuse(flag, text, 'is not a rate', RATE_RANGE, '100/s')
  const perSecond = Number(m[1]) / (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1)
  if (!(perSecond > 0) || perSecond > MAX_RATE_PER_SEC) refuse(flag, text, 'is out of range', RATE_RANGE, '100/s')
  return perSecond
}

export function rateFlag(options: Common) {
  return Flags.string({ ...options, description: `${options.description} Range: above 0, at most ${MAX_RATE_PER_SEC}/s.`, helpValue: '<rate>', parse: async (input, _ctx, flag) => (checkRate(flag.name, input), input) })
}

const ISO_RANGE = 'an ISO 8601 time from 1970-01-01 to 9999-12-31 (UTC when no zone)'
const TIME_RANGE = 'an ISO 8601 time from 1970-01-01 to 9999-12-31, or a duration ago (15m, 2h, 3d) that lands in that range'

/** A point in time: ISO 8601, or a duration ago (`15m`, `-15m`, `15m ago`), from 1970 to 9999. */
export function checkTime(flag: string, text: string, nowMs = Date.now(), isoOnly = false): number {
  const iso = parseIsoTimeMs(text)
  const range = isoOnly ? ISO_RANGE : TIME_RANGE
  if (iso !== undefined) {
    if (iso < MIN_TIME_MS || iso > MAX_TIME_MS) refuse(flag, text, 'is out of range', range, '2026-12-01T09:00:00Z')
    return iso
  }
  if (isoOnly) refuse(flag, text, 'is not an ISO 8601 time (or names a day that does not exist)', range, '2026-12-01T09:00:00Z')
  const ago = parseDurationMs(text.trim().replace(/^-/, '').replace(/\s*ago$/, ''))
  if (ago === undefined) refuse(flag, text, 'is not a time', TIME_RANGE, '2h')
  if (!Number.isFinite(ago) || nowMs - ago < MIN_TIME_MS) refuse(flag, text, 'is out of range', TIME_RANGE, '2h')
  return nowMs - ago
}

export function timeFlag(options: Common & { isoOnly?: boolean }) {
  const { isoOnly = false, ...rest } = options
  return Flags.string({ ...rest, helpValue: '<time>', parse: async (input, _ctx, flag) => (checkTime(flag.name, input, Date.now(), isoOnly), input) })
}

const POSITION_RANGE = (words: readonly string[], offsets: boolean): string =>
  `${words.join(', ')}, ` +
  (offsets ? `an offset from 0 to ${Number.MAX_SAFE_INTEGER} (42; 3:42 for partition 3 only), the last N (-20 of the whole log; 3:-20 of partition 3), ` : '') +
  'an ISO 8601 time from 1970 to 9999, or a duration ago (15m)'

/**
 * A position in the log: one of `words` (beginning, end), with `offsets` an offset (`42`, `3:42`) or the
 * last N (`-20`, `3:-20`), or a point in time. Offsets and counts are safe integers; times as checkTime.
 */
export function checkPosition(flag: string, text: string, words: readonly string[], offsets: boolean): void {
  const range = POSITION_RANGE(words, offsets)
  const trimmed = text.trim()
  if (words.includes(trimmed)) return
  const numeric = offsets ? /^(?:(\d+):)?-?(\d+)$/.exec(trimmed) : null
  if (numeric) {
    const [partition, offset] = [numeric[1] ? Number(numeric[1]) : 0, Number(numeric[2])]
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(partition)) refuse(flag, text, 'is out of range', range, '42')
    return
  }
  try {
    checkTime(flag, text)
  } catch (error) {
    if (error instanceof UsageError && / is out of range:/.test(error.message)) refuse(flag, text, 'is out of range', range, '15m')
    refuse(flag, text, 'is not a position', range, '15m')
  }
}

export function positionFlag(options: Common & { words: readonly string[]; offsets: boolean }) {
  const { words, offsets, ...rest } = options
  return Flags.string({ ...rest, helpValue: '<position>', parse: async (input, _ctx, flag) => (checkPosition(flag.name, input, words, offsets), input) })
}
