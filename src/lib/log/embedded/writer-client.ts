/** The main thread's side of the embedded log's writer thread (see writer-thread.ts). */
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { Worker } from 'node:worker_threads'

import type { WriterReply, WriterRequest } from './writer-thread.js'
import { packRows, unpackResults, type Row, type WriteResult } from './writer.js'

// The build emits the thread as its own file next to the bundle; from TypeScript sources (unit tests)
// it is absent and the log commits in process.
const THREAD_MODULE = new URL('./embedded-writer.js', import.meta.url)

export function writerThreadAvailable(): boolean {
  return existsSync(fileURLToPath(THREAD_MODULE))
}

/**
 * Whether large batches commit on the writer thread: only when WAL_WRITER_THREAD=on (or 1, true, yes, in
 * any case). In process is the default, since the thread no longer pays on any machine: on an idle
 * 2-core machine, 100k lines of ~200 B took 1.41-1.42x the raw loader's CPU with it and 1.12-1.13x
 * without, at 0.91-0.92x of its wall throughput against 0.98-0.99x (20k lines of 4 kB: 0.80-0.84 s
 * against 0.64-0.68 s); on a busy one it costs more still (a second isolate, rows handed over and back,
 * two wake-ups per commit). The thread stays for whoever measures otherwise on their machine.
 */
export function writerThreadWanted(): boolean {
  return /^(on|1|true|yes)$/i.test(process.env.WAL_WRITER_THREAD ?? '')
}

interface Waiting {
  rows: Row[]
  resolve: (results: WriteResult[]) => void
  reject: (error: unknown) => void
}

export class WriterThread {
  private readonly worker: Worker
  private readonly waiting = new Map<number, Waiting>()
  private seq = 0
  private dead: Error | undefined
  /** Set once close() began: the thread stays referenced until it has exited. */
  private closing = false
  /** Transactions the thread committed. */
  commits = 0

  constructor(path: string, lockTimeoutMs: number) {
    // node:worker_threads is loaded here, on a large batch's first commit, not on every `wal` start.
    const { Worker: WorkerThreadClass } = process.getBuiltinModule('node:worker_threads')
    this.worker = new WorkerThreadClass(THREAD_MODULE, { workerData: { path, lockTimeoutMs } })
    // Keeps the process alive only while a commit is outstanding.
    this.worker.unref()
    this.worker.on('message', (reply: WriterReply) => {
      const waiting = this.waiting.get(reply.seq)
      this.waiting.delete(reply.seq)
      // Unreferenced between commits, but never while closing: a late reply must not let the process end
      // (exit 13, "unsettled top-level await") before the thread has exited and close() resolved.
      if (this.waiting.size === 0 && !this.closing) this.worker.unref()
      if (!waiting) return
      if ('error' in reply) waiting.reject(Object.assign(new Error(reply.error.message), reply.error))
      else {
        this.commits++
        waiting.resolve(unpackResults(waiting.rows, reply.results))
      }
    })
    this.worker.on('error', (error) => this.failAll(error))
    this.worker.on('exit', (code) => this.failAll(new Error(`the writer thread stopped (exit code ${code})`)))
  }

  /** Resolves once no commit is outstanding. */
  private idle(): Promise<void> {
    const last = this.waiting.get(this.seq)
    if (!last) return Promise.resolve()
    // Commits settle in order, so the last one settling means all did.
    return new Promise((resolve) => {
      const { resolve: ok, reject } = last
      last.resolve = (results) => {
        ok(results)
        resolve()
      }
      last.reject = (error) => {
        reject(error)
        resolve()
      }
    })
  }

  private failAll(error: Error): void {
    this.dead ??= error
    for (const waiting of this.waiting.values()) waiting.reject(error)
    this.waiting.clear()
  }

  /** Commits rows in the thread; commits happen in the order they were asked for. */
  commit(rows: Row[]): Promise<WriteResult[]> {
    if (this.dead) return Promise.reject(this.dead)
    const seq = ++this.seq
    const done = new Promise<WriteResult[]>((resolve, reject) => this.waiting.set(seq, { rows, resolve, reject }))
    this.worker.ref()
    const packed = packRows(rows)
    this.worker.postMessage({ seq, rows: packed } satisfies WriterRequest, [packed.lengths.buffer, packed.numbers.buffer])
    return done
  }

  /** Waits for outstanding commits, then stops the thread (closing its connection). */
  async close(): Promise<void> {
    if (this.dead) return
    this.closing = true
    this.worker.ref()
    // Commits asked for while waiting (a last flush) are waited for too.
    while (this.waiting.size > 0) await this.idle()
    if (this.dead) return
    const exited = once(this.worker, 'exit')
    this.worker.postMessage({ close: true } satisfies WriterRequest)
    await exited
  }
}
