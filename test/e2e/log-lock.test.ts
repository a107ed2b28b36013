/**
 * Another process holding the embedded log's write lock (a producer stopped mid-write with SIGSTOP or
 * Ctrl-Z holds it until it goes on): a consumer says so and waits, it does not exit; once the lock is
 * free it commits what it applied and goes on. `--until-idle` does not call itself done while its
 * state cannot be written, and a stop is not held up by the lock.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { committedOffsets } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let outPath: string
beforeEach(() => {
  wal = makeSandbox()
  outPath = join(wal.dir, 'out.ndjson')
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { out: { type: 'file', path: outPath } } } } }))
})
afterEach(() => wal.cleanup())

const lines = (from: number, count: number): string => ndjson(Array.from({ length: count }, (_, i) => ({ key: `k${(from + i) % 7}`, payload: { seq: from + i } })))

/** Takes the log's write lock as a frozen writer would hold it; returns the function that lets it go. */
function holdWriteLock(): () => void {
  const db = new DatabaseSync(join(wal.stateDir, 'embedded', 'orders.db'))
  db.exec('BEGIN IMMEDIATE')
  return () => {
    db.exec('ROLLBACK')
    db.close()
  }
}

const committedSum = (): number => committedOffsets(wal.stateDir, 'orders').filter((r) => r.target === 'out').reduce((sum, r) => sum + r.next_offset, 0)
const fileSeqs = (): number[] => jsonLines<{ payload: { seq: number } }>(readFileSync(outPath, 'utf8')).map((l) => l.payload.seq)

describe('the embedded log locked by another process', () => {
  it('makes a running consumer wait and say why, not exit; it commits once the lock is free, and stops at once when asked', async () => {
    expect((await wal.run(['produce', '-n', 'orders'], { input: lines(0, 50) })).code).toBe(0)
    const consumer = wal.spawn(['consume', '-n', 'orders', '--lease-ttl', '2s'])
    let stderr = ''
    consumer.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve) => consumer.on('close', (code) => resolve(code)))
    await waitFor(() => committedSum() === 50, { timeoutMs: 30_000 })

    const release = holdWriteLock()
    let released = false
    try {
      // Written to the log before the lock was taken: read and applied, but not committed while locked.
      await waitFor(() => stderr.includes('waiting: cannot write the consumer state'), { timeoutMs: 30_000 })
      expect(stderr).toContain('hint: find the process holding it')
      // Longer than a lease and than the lock wait: still running.
      await new Promise((resolve) => setTimeout(resolve, 3000))
      expect(consumer.exitCode).toBeNull()
      release()
      released = true
    } finally {
      if (!released) release()
    }
    // The lock is free: new writes are applied and committed.
    expect((await wal.run(['produce', '-n', 'orders'], { input: lines(50, 30) })).code).toBe(0)
    await waitFor(() => committedSum() === 80, { timeoutMs: 30_000 })
    expect(new Set(fileSeqs())).toEqual(new Set(Array.from({ length: 80 }, (_, i) => i)))

    // A stop while the lock is held again ends within the lock wait, with nothing lost: what was not
    // committed stays in the log for the next consumer.
    expect((await wal.run(['produce', '-n', 'orders'], { input: lines(80, 20) })).code).toBe(0)
    await waitFor(() => fileSeqs().length >= 100, { timeoutMs: 30_000 })
    const releaseAgain = holdWriteLock()
    try {
      const startedMs = Date.now()
      consumer.kill('SIGTERM')
      expect(await exited).toBe(0)
      expect(Date.now() - startedMs).toBeLessThan(20_000)
    } finally {
      releaseAgain()
    }
    const drain = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(drain.code, drain.stderr).toBe(0)
    expect(committedSum()).toBe(100)
    expect(new Set(fileSeqs())).toEqual(new Set(Array.from({ length: 100 }, (_, i) => i)))
  }, 120_000)

  it('does not let --until-idle call itself done while its state cannot be written: it gives up after --idle-timeout (exit 5) and says why', async () => {
    expect((await wal.run(['produce', '-n', 'orders'], { input: lines(0, 20) })).code).toBe(0)
    // A first consume creates the consumer state, so the next one only has offsets to write.
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect((await wal.run(['produce', '-n', 'orders'], { input: lines(20, 20) })).code).toBe(0)
    const release = holdWriteLock()
    try {
      const run = await wal.run(['consume', '-n', 'orders', '--until-idle', '--idle-timeout', '8s'])
      expect(run.code, run.stderr).toBe(5)
      expect(run.stderr).toContain('another process held its write lock')
    } finally {
      release()
    }
    expect(committedSum()).toBe(20)
    const drain = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(drain.code, drain.stderr).toBe(0)
    expect(committedSum()).toBe(40)
  }, 120_000)
})
