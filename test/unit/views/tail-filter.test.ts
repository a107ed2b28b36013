import { describe, expect, it } from 'vitest'

import type { LogRecord } from '../../../src/lib/envelope/envelope.js'
import { RateMeter } from '../../../src/lib/views/rate-meter.js'
import { parseFilter } from '../../../src/lib/views/tail/tail-filter.js'

const base: LogRecord = {
  id: '01TEST00000000000000000001',
  namespace: 'default',
  key: 'user-42',
  payload: { encoding: 'json', json: '{"op":"put","table":"users"}' },
  headers: { source: 'billing' },
  createdAtMs: 0,
  notBeforeMs: null,
  target: null,
  idempotencyKey: null,
  attempts: 0,
  failures: [],
  partition: 0,
  offset: 0,
  appendedAtMs: 0,
}

describe('the live tail filter', () => {
  it('matches everything when empty', () => {
    expect(parseFilter('  ')(base)).toBe(true)
  })
  it('matches a key exactly with key=', () => {
    expect(parseFilter('key=user-42')(base)).toBe(true)
    expect(parseFilter('key=user-4')(base)).toBe(false)
  })
  it('matches other text anywhere in the row: key, headers or payload', () => {
    expect(parseFilter('billing')(base)).toBe(true)
    expect(parseFilter('"table":"users"')(base)).toBe(true)
    expect(parseFilter('orders')(base)).toBe(false)
  })
})

describe('the rate meter', () => {
  it('averages over the time since the start until the window is full, and at least a second', () => {
    const meter = new RateMeter(10_000)
    meter.add(5, 500)
    expect(meter.perSecond(500, 0)).toBe(5)
    meter.add(15, 4000)
    expect(meter.perSecond(4000, 0)).toBe(5)
  })
  it('forgets what is older than the window, so the rate falls to 0 in a lull', () => {
    const meter = new RateMeter(10_000)
    meter.add(100, 1000)
    expect(meter.perSecond(12_000, 0)).toBe(0)
  })
})
