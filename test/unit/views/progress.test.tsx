import { render } from 'ink-testing-library'
import { afterEach, describe, expect, it } from 'vitest'

import { ProgressEmitter } from '../../../src/lib/io/progress.js'
import { bar, etaSeconds, formatAmount, formatEta, type ProgressState } from '../../../src/lib/views/progress/progress-model.js'
import { ProgressView } from '../../../src/lib/views/progress/progress-view.js'
import { waitFor } from '../../helpers/wal.js'

const state = (over: Partial<ProgressState>): ProgressState => ({ label: 'x', done: 0, total: null, unit: 'entries', startedAtMs: 0, nowMs: 0, finished: false, ...over })

describe('progress numbers', () => {
  it('estimates the time left from the rate so far', () => {
    expect(etaSeconds(state({ done: 250, total: 1000, nowMs: 5000 }))).toBe(15)
    expect(formatEta(15)).toBe('00:15')
    expect(formatEta(3725)).toBe('1:02:05')
  })
  it('has no ETA without a total or before anything is done', () => {
    expect(etaSeconds(state({ done: 10, nowMs: 1000 }))).toBeNull()
    expect(etaSeconds(state({ done: 0, total: 10, nowMs: 1000 }))).toBeNull()
    expect(formatEta(null)).toBe('--:--')
  })
  it('draws full cells for what is done and writes bytes in binary units', () => {
    expect(bar(0.5, 10)).toBe('█████░░░░░')
    expect(formatAmount(1536, 'bytes')).toBe('1.5 KiB')
    expect(formatAmount(42, 'entries')).toBe('42')
  })
})

let unmount: (() => void) | undefined
afterEach(() => {
  unmount?.()
  unmount = undefined
})

describe('the progress view', () => {
  it('shows the share done with rate and ETA, then done when the work finishes', async () => {
    const emitter = new ProgressEmitter({ label: 'replay', unit: 'entries', total: 200 })
    const view = render(<ProgressView emitter={emitter} intervalMs={10} />)
    unmount = view.unmount
    emitter.add(50)
    await waitFor(() => view.lastFrame()?.includes('25%'), { timeoutMs: 3000 })
    expect(view.lastFrame()).toMatch(/^replay █+░+ 25% {2}50\/200 entries {2}\d+\/s {2}ETA 00:0\d$/)
    emitter.add(150)
    emitter.finish()
    await waitFor(() => view.frames.some((f) => f.includes('100%') && f.includes('done')), { timeoutMs: 3000 })
  })
})
