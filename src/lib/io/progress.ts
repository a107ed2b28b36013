/**
 * Progress of long work (a replay, a large produce), as the service sees it: counts on an event
 * emitter. Shown as a bar on stderr when stderr is a terminal (views/progress), nowhere otherwise, so
 * piped output and results on stdout never change.
 */
import { EventEmitter } from 'node:events'

import type { Io } from './context.js'

export interface ProgressSnapshot {
  label: string
  done: number
  total: number | null
  unit: string
  startedAtMs: number
  finished: boolean
}

/** Emits 'update' on each change and 'finish' once. */
export class ProgressEmitter extends EventEmitter<{ update: []; finish: [] }> {
  private state: ProgressSnapshot

  constructor({ label, unit, total = null, now = Date.now }: { label: string; unit: string; total?: number | null; now?: () => number }) {
    super()
    this.state = { label, unit, total, done: 0, startedAtMs: now(), finished: false }
  }

  get snapshot(): ProgressSnapshot {
    return { ...this.state }
  }

  add(units: number): void {
    if (this.state.finished || units === 0) return
    this.state.done += units
    this.emit('update')
  }

  finish(): void {
    if (this.state.finished) return
    this.state.finished = true
    this.emit('finish')
  }
}

/** What a service holds: where to count, and how to end the display (awaited before results print). */
export interface Progress {
  emitter: ProgressEmitter
  close(): Promise<void>
}

/**
 * A progress display on stderr when it is a terminal (and WAL_NO_PROGRESS is not set); null otherwise.
 * ink loads only here, on a terminal.
 */
export async function terminalProgress(io: Io, options: { label: string; unit: string; total?: number | null }): Promise<Progress | null> {
  if (!(io.stderr as { isTTY?: boolean }).isTTY || io.env.WAL_NO_PROGRESS) return null
  const emitter = new ProgressEmitter(options)
  const { renderProgress } = await import('../views/progress/render-progress.js')
  const shown = renderProgress(emitter, io)
  return {
    emitter,
    async close() {
      emitter.finish()
      await shown
    },
  }
}
