import { describe, expect, it } from 'vitest'

import { parseDurationMs, parseIsoTimeMs, parsePointInTimeMs } from '../../src/lib/time.js'

describe('durations', () => {
  it.each([
    ['250ms', 250],
    ['90s', 90_000],
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['3d', 259_200_000],
    ['1w', 604_800_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
  ])('parses %s', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms)
  })

  it.each(['', 'soon', '15', 'm15', '15 minutes', '-5m', '1h 30m'])('rejects %j', (text) => {
    expect(parseDurationMs(text)).toBeUndefined()
  })
})

describe('points in time', () => {
  it('reads ISO times with and without a zone (UTC when none)', () => {
    expect(parseIsoTimeMs('2026-12-01T09:00:00Z')).toBe(Date.UTC(2026, 11, 1, 9))
    expect(parseIsoTimeMs('2026-12-01T09:00:00+02:00')).toBe(Date.UTC(2026, 11, 1, 7))
    expect(parseIsoTimeMs('2026-12-01 09:00')).toBe(Date.UTC(2026, 11, 1, 9))
    expect(parseIsoTimeMs('2026-12-01')).toBe(Date.UTC(2026, 11, 1))
    expect(parseIsoTimeMs('tomorrow')).toBeUndefined()
    expect(parseIsoTimeMs('2026-13-45T99:00:00Z')).toBeUndefined()
  })

  it('reads a duration as that long ago', () => {
    const now = 1_000_000_000
    expect(parsePointInTimeMs('15m', now)).toBe(now - 900_000)
    expect(parsePointInTimeMs('15m ago', now)).toBe(now - 900_000)
    expect(parsePointInTimeMs('-2h', now)).toBe(now - 7_200_000)
    expect(parsePointInTimeMs('whenever', now)).toBeUndefined()
  })
})
