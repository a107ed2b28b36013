import { render } from 'ink-testing-library'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type { TopRow, TopSnapshot } from '../../../src/lib/top/top.js'
import { renderTopSnapshot, sortRows } from '../../../src/lib/views/top/top-rows.js'
import { TopView } from '../../../src/lib/views/top/top-view.js'
import { asyncQueue } from '../../helpers/async-queue.js'
import { waitFor } from '../../helpers/wal.js'

function row(namespace: string, target: string, over: Partial<TopRow> = {}): TopRow {
  return {
    namespace,
    target,
    shard: 'all',
    state: 'running',
    throughputPerSec: 0,
    lag: 0,
    inFlight: null,
    retries: 0,
    waiting: 0,
    circuit: 'closed',
    dlqDepth: 0,
    topErrors: [],
    ...over,
  }
}

function snapshot(rows: TopRow[], at = '2026-12-01T09:00:00.000Z'): TopSnapshot {
  return { at, source: 'daemon', rows }
}

const rowsOf = (frame: string): string[] => frame.split('\n').filter((l) => /^(orders|users|audit)\s/.test(l))

let unmount: (() => void) | undefined
afterEach(() => {
  unmount?.()
  unmount = undefined
})

function setup() {
  const queue = asyncQueue<TopSnapshot>()
  const onQuit = vi.fn(() => queue.end())
  const view = render(<TopView snapshots={queue} onQuit={onQuit} />)
  unmount = view.unmount
  const until = (check: (frame: string) => boolean): Promise<boolean> => waitFor(() => check(view.lastFrame() ?? ''), { timeoutMs: 3000 })
  return { queue, onQuit, view, until }
}

const first = [
  row('orders', 'billing', { lag: 5, dlqDepth: 7, throughputPerSec: 1, topErrors: [{ errorClass: 'fatal', code: 'HTTP_400', count: 7 }], circuit: 'open (2× opened)' }),
  row('users', 'kv', { lag: 50, throughputPerSec: 30 }),
  row('audit', 'file', { lag: 0, throughputPerSec: 90 }),
]

describe('the wal top view', () => {
  it('shows each row with rate, lag, circuit, DLQ depth and top errors, sorted by lag', async () => {
    const t = setup()
    t.queue.push(snapshot(first))
    await t.until((f) => f.includes('open (2× opened)'))
    const frame = t.view.lastFrame()!
    expect(frame).toContain('from the daemon')
    expect(frame).toMatch(/NAMESPACE\s+TARGET\s+SHARD\s+STATE\s+RATE\/S\s+LAG\s+IN-FLIGHT\s+RETRIES\s+WAITING\s+CIRCUIT\s+DLQ\s/)
    expect(rowsOf(frame).map((l) => l.split(/\s+/)[0])).toEqual(['users', 'orders', 'audit'])
    // The test terminal is 100 columns: the row is cut there (the piped table below has it all).
    expect(frame).toMatch(/orders\s+billing\s+all\s+running\s+1\.0\s+5\s+-\s+0\s+0\s+open \(2× opened\)\s+7\s/)
  })

  it('changes the sort on s, and filters by namespace after /', async () => {
    const t = setup()
    t.queue.push(snapshot(first))
    await t.until((f) => f.includes('sort: lag'))
    t.view.stdin.write('s')
    await t.until((f) => f.includes('sort: throughput'))
    expect(rowsOf(t.view.lastFrame()!).map((l) => l.split(/\s+/)[0])).toEqual(['audit', 'users', 'orders'])
    t.view.stdin.write('/')
    await t.until((f) => f.includes('namespace (enter'))
    t.view.stdin.write('ord')
    await t.until((f) => f.includes('): ord'))
    t.view.stdin.write('\r')
    await t.until((f) => f.includes('namespace: ord'))
    expect(rowsOf(t.view.lastFrame()!).map((l) => l.split(/\s+/)[0])).toEqual(['orders'])
  })

  it('holds the table while paused, and takes the next snapshot once resumed', async () => {
    const t = setup()
    t.queue.push(snapshot(first))
    await t.until((f) => f.includes('09:00:00'))
    t.view.stdin.write('p')
    await t.until((f) => f.includes('PAUSED'))
    t.queue.push(snapshot([row('orders', 'billing', { lag: 999 })], '2026-12-01T09:00:02.000Z'))
    await waitFor(() => t.queue.size === 0, { timeoutMs: 3000 })
    t.view.stdin.write('p')
    await t.until((f) => !f.includes('PAUSED'))
    t.queue.push(snapshot([row('orders', 'billing', { lag: 999 })], '2026-12-01T09:00:04.000Z'))
    await t.until((f) => f.includes('09:00:04') && f.includes('999'))
    // What came while paused was never shown.
    expect(t.view.frames.some((f) => f.includes('09:00:02'))).toBe(false)
  })

  it('asks to quit on q', async () => {
    const t = setup()
    t.view.stdin.write('q')
    await waitFor(() => t.onQuit.mock.calls.length > 0, { timeoutMs: 3000 })
  })
})

describe('sorting top rows', () => {
  it('puts rows with no throughput yet last when sorting by throughput, and breaks ties by name', () => {
    const rows = [row('b', 't', { throughputPerSec: null }), row('c', 't', { throughputPerSec: 2 }), row('a', 't', { throughputPerSec: 2 })]
    expect(sortRows(rows, 'throughput').map((r) => r.namespace)).toEqual(['a', 'c', 'b'])
    expect(sortRows(rows, 'name').map((r) => r.namespace)).toEqual(['a', 'b', 'c'])
  })
})

describe('the piped top table', () => {
  it('has every column in full, the top errors last', () => {
    const text = renderTopSnapshot(snapshot(first))
    const lines = text.split('\n')
    expect(lines[0]).toBe('2026-12-01T09:00:00.000Z from the daemon')
    expect(lines[1]).toMatch(/^NAMESPACE\s+TARGET\s+SHARD\s+STATE\s+RATE\/S\s+LAG\s+IN-FLIGHT\s+RETRIES\s+WAITING\s+CIRCUIT\s+DLQ\s+TOP ERRORS$/)
    expect(lines[2]).toMatch(/^orders\s+billing\s+all\s+running\s+1\.0\s+5\s+-\s+0\s+0\s+open \(2× opened\)\s+7\s+fatal\/HTTP_400×7$/)
    expect(lines[3]).toMatch(/^users\s+kv\s.*\s-$/)
  })
})
