import { render } from 'ink-testing-library'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type { LogRecord } from '../../../src/lib/envelope/envelope.js'
import type { ExplainReport } from '../../../src/lib/explain/explain.js'
import { TailView } from '../../../src/lib/views/tail/tail-view.js'
import { asyncQueue } from '../../helpers/async-queue.js'
import { waitFor } from '../../helpers/wal.js'

let seq = 0
function record(key: string, payload: unknown = { n: seq }): LogRecord {
  seq++
  return {
    id: `01TEST${String(seq).padStart(20, '0')}`,
    namespace: 'orders',
    key,
    payload: { encoding: 'json', json: JSON.stringify(payload) },
    headers: {},
    createdAtMs: Date.UTC(2026, 11, 1, 9, 0, seq),
    notBeforeMs: null,
    target: null,
    idempotencyKey: null,
    attempts: 0,
    failures: [],
    partition: seq % 4,
    offset: seq,
    appendedAtMs: Date.UTC(2026, 11, 1, 9, 0, seq),
  }
}

const ESC = '\u001B'
const UP = '\u001B[A'

function report(id: string): ExplainReport {
  return {
    id,
    namespace: 'orders',
    key: 'k',
    createdAt: '2026-12-01T09:00:01.000Z',
    writes: [],
    targets: [
      {
        target: 'billing',
        status: 'dead-lettered',
        detail: 'in the DLQ (entry 1)',
        events: [{ at: '2026-12-01T09:00:02.000Z', event: 'failed', attempt: 1, errorClass: 'fatal', code: 'HTTP_400', message: 'bad request' }],
        deliveries: [],
      },
    ],
  } as ExplainReport
}

function setup(lookup = vi.fn(async (id: string) => report(id))) {
  const queue = asyncQueue<LogRecord>()
  const onQuit = vi.fn(() => queue.end())
  const view = render(<TailView namespace="orders" records={queue} lookup={lookup} onQuit={onQuit} flushMs={10} />)
  // Everything written so far: the <Static> rows scroll past the live frame.
  const screen = (): string => view.frames.join('\n')
  const until = (text: string): Promise<boolean> => waitFor(() => (view.lastFrame() ?? '').includes(text), { timeoutMs: 3000 })
  return { queue, onQuit, lookup, view, screen, until }
}

let cleanup: (() => void) | undefined
afterEach(() => {
  cleanup?.()
  cleanup = undefined
})

describe('the live tail view', () => {
  it('prints new mutations as rows and counts them with a rate in the footer', async () => {
    const t = setup()
    cleanup = t.view.unmount
    t.queue.push(record('user-1'))
    t.queue.push(record('user-2'))
    await t.until('seen 2  shown 2')
    expect(t.screen()).toContain('key="user-1"')
    expect(t.screen()).toContain('key="user-2"')
    expect(t.view.lastFrame()).toMatch(/orders\s+seen 2 {2}shown 2 {2}\d+\.\d\/s/)
  })

  it('applies a filter typed after / to the mutations that follow, and counts what it hides', async () => {
    const t = setup()
    cleanup = t.view.unmount
    t.queue.push(record('before'))
    await t.until('seen 1')
    t.view.stdin.write('/')
    await t.until('filter (key=K')
    t.view.stdin.write('key=user-7')
    await t.until('key=user-7')
    t.view.stdin.write('\r')
    await t.until('filter: key=user-7')
    t.queue.push(record('user-6', { hidden: true }))
    t.queue.push(record('user-7', { visible: true }))
    await t.until('seen 3  shown 2')
    expect(t.screen()).toContain('{"visible":true}')
    expect(t.screen()).not.toContain('{"hidden":true}')
  })

  it('applies a filter pasted together with its Enter, and keys that arrive in one chunk before the view drew', async () => {
    const t = setup()
    cleanup = t.view.unmount
    t.queue.push(record('before'))
    await t.until('seen 1')
    // "/", the filter (a typo fixed with backspace) and Enter in one chunk: what a paste delivers, and
    // what keys typed while the view started arrive as (the terminal's line, read at once in raw mode).
    t.view.stdin.write('/key=user-9x\u007f\n')
    await t.until('filter: key=user-9')
    t.queue.push(record('user-8', { hidden: true }))
    t.queue.push(record('user-9', { visible: true }))
    await t.until('seen 3  shown 2')
    expect(t.screen()).toContain('{"visible":true}')
    expect(t.screen()).not.toContain('{"hidden":true}')
    // Keys of the view in one chunk: q quits.
    t.view.stdin.write('jq')
    await waitFor(() => t.onQuit.mock.calls.length === 1, { timeoutMs: 3000 })
    expect(t.onQuit).toHaveBeenCalledWith('quit')
  })

  it('drops an edited filter on escape', async () => {
    const t = setup()
    cleanup = t.view.unmount
    t.view.stdin.write('/')
    await t.until('filter (key=K')
    t.view.stdin.write('abc')
    await t.until('abc')
    t.view.stdin.write(ESC)
    await waitFor(() => !(t.view.lastFrame() ?? '').includes('filter ('), { timeoutMs: 3000 })
    expect(t.view.lastFrame()).not.toContain('filter: abc')
  })

  it('shows the envelope and failure history of the mutation selected with the arrow keys', async () => {
    const t = setup()
    cleanup = t.view.unmount
    const first = record('user-1')
    const second = record('user-2')
    t.queue.push(first)
    t.queue.push(second)
    await t.until('seen 2')
    t.view.stdin.write(UP)
    await t.until('selected › ')
    expect(t.view.lastFrame()).toMatch(/selected › .*key="user-2"/)
    t.view.stdin.write(UP)
    await waitFor(() => /selected › .*key="user-1"/.test(t.view.lastFrame() ?? ''), { timeoutMs: 3000 })
    t.view.stdin.write('\r')
    await t.until('HTTP_400')
    const frame = t.view.lastFrame()!
    expect(frame).toContain(`mutation ${first.id}`)
    expect(frame).toContain('key: "user-1"')
    expect(frame).toContain('failures: []')
    expect(frame).toContain('target billing: dead-lettered')
    expect(frame).toContain('failed (attempt 1) fatal HTTP_400: bad request')
    expect(t.lookup).toHaveBeenCalledWith(first.id)
    t.view.stdin.write(ESC)
    await waitFor(() => !(t.view.lastFrame() ?? '').includes('HTTP_400'), { timeoutMs: 3000 })
  })

  it('says so when the history lookup fails', async () => {
    const t = setup(vi.fn(async () => Promise.reject(new Error('log is locked'))))
    cleanup = t.view.unmount
    t.queue.push(record('user-1'))
    await t.until('seen 1')
    t.view.stdin.write(UP)
    await t.until('selected › ')
    t.view.stdin.write('\r')
    await t.until('lookup failed: log is locked')
  })

  // ctrl-c is covered under tmux (test/e2e/live-tail.test.ts): ink-testing-library exits on it before the view sees it.
  it('asks to quit on q, and shows the stream ended once it has', async () => {
    const t = setup()
    cleanup = t.view.unmount
    t.view.stdin.write('q')
    await waitFor(() => t.onQuit.mock.calls.length > 0, { timeoutMs: 3000 })
    expect(t.onQuit).toHaveBeenCalledWith('quit')
    await waitFor(() => t.screen().includes('(ended)'), { timeoutMs: 3000 })
  })
})
