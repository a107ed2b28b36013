// Consumers under faults: frozen (SIGSTOP) past their leases, killed, frozen while holding a store's lock.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { committedOffsets, highMarks, kvItems, leaseRows } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

const KEYS = 40

function puts(rounds: number): Array<Record<string, unknown>> {
  const lines = []
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < KEYS; k++) lines.push({ key: `k${k}`, payload: { op: 'put', table: 't', key: { id: `k${k}` }, item: { id: `k${k}`, round } } })
  }
  return lines
}

function configure(outPath: string): void {
  writeFileSync(
    join(wal.cwd, '.walrc.json'),
    JSON.stringify({ namespaces: { orders: { partitions: 8, targets: { store: { type: 'kv' }, out: { type: 'file', path: outPath } } } } }),
  )
}

/** Sum of committed offsets of a target. */
function committedSum(target: string): number {
  return committedOffsets(wal.stateDir, 'orders')
    .filter((r) => r.target === target)
    .reduce((n, r) => n + r.next_offset, 0)
}

/** Every partition of both targets committed up to the end of the log. */
function allCommitted(): boolean {
  const high = highMarks(wal.stateDir, 'orders')
  const committed = committedOffsets(wal.stateDir, 'orders')
  return ['store', 'out'].every((target) => [...high].every(([p, h]) => committed.find((r) => r.target === target && r.partition === p)?.next_offset === h))
}

/** Samples committed offsets every 100 ms and records every one that went backwards. */
function watchOffsets(): { regressions: string[]; stop(): void } {
  const last = new Map<string, number>()
  const regressions: string[] = []
  const timer = setInterval(() => {
    for (const r of committedOffsets(wal.stateDir, 'orders')) {
      const id = `${r.target}/${r.partition}`
      const before = last.get(id)
      if (before !== undefined && r.next_offset < before) regressions.push(`${id}: ${before} -> ${r.next_offset}`)
      last.set(id, r.next_offset)
    }
  }, 100)
  return { regressions, stop: () => clearInterval(timer) }
}

function spawnConsumer(args: string[]): { child: ReturnType<Sandbox['spawn']>; closed: Promise<number | null>; stderr: () => string } {
  const child = wal.spawn(['consume', '-n', 'orders', ...args])
  let err = ''
  child.stdout!.resume()
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
  return { child, closed, stderr: () => err }
}

/** Whether another connection holds the write lock of a SQLite file right now. */
function writeLocked(path: string): boolean {
  const db = new DatabaseSync(path, { timeout: 0 })
  try {
    db.exec('BEGIN IMMEDIATE')
    db.exec('ROLLBACK')
    return false
  } catch {
    return true
  } finally {
    db.close()
  }
}

describe('fenced leases', () => {
  it('never moves a committed offset back when a consumer frozen past its leases (SIGSTOP) comes back after another took over and died', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    configure(outPath)
    const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(puts(75)) })
    expect(produced.code, produced.stderr).toBe(0)
    const ids = new Set(jsonLines<Ack>(produced.stdout).map((a) => a.id))
    expect(ids.size).toBe(75 * KEYS)
    const watch = watchOffsets()
    try {
      const flags = ['--shard', 'auto', '--lease-ttl', '2s', '--rate', '400/s', '--concurrency', '4']
      const a = spawnConsumer(flags)
      await waitFor(() => committedSum('out') > 400, { timeoutMs: 60_000 })
      // Frozen at a moment it is not inside a commit to the log (that would hold up every consumer of the
      // log, whatever the leases say). It may well hold the kv store's lock: B then pauses kv, not the file.
      const logPath = join(wal.stateDir, 'embedded', 'orders.db')
      for (;;) {
        a.child.kill('SIGSTOP')
        if (!writeLocked(logPath)) break
        a.child.kill('SIGCONT')
        await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20))
      }
      const atStop = committedSum('out')

      // B takes A's partitions over once A's leases lapse, gets well past where A was, and is killed.
      const b = spawnConsumer(flags)
      await waitFor(() => committedSum('out') > atStop + 800, { timeoutMs: 60_000 })
      b.child.kill('SIGKILL')
      await b.closed

      // A comes back holding positions (and work) from before: it must not commit any of it.
      a.child.kill('SIGCONT')
      await waitFor(allCommitted, { timeoutMs: 120_000 })
      a.child.kill('SIGTERM')
      expect(await a.closed, a.stderr()).toBe(0)
    } finally {
      watch.stop()
    }
    expect(watch.regressions).toEqual([])

    // Every mutation reached the file target (at least once), and the kv store ends with the last round.
    const written = new Set(jsonLines<{ id: string }>(readFileSync(outPath, 'utf8')).map((e) => e.id))
    expect([...ids].filter((id) => !written.has(id))).toEqual([])
    const items = kvItems(wal.stateDir, 'orders')
    expect(items).toHaveLength(KEYS)
    for (const row of items) expect(JSON.parse(row.item!), row.pk).toMatchObject({ round: 74 })
  }, 300_000)

  it('gives each acquisition of a lease a higher epoch, and keeps it across a release', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' } } } } }))
    await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', JSON.stringify({ op: 'put', table: 't', key: { id: 1 }, item: { v: 1 } })])
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    const first = leaseRows(wal.stateDir, 'orders')
    expect(first.map((l) => [l.partition, l.owner, l.epoch])).toEqual([
      [0, '', 1],
      [1, '', 1],
    ])
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect(leaseRows(wal.stateDir, 'orders').map((l) => l.epoch)).toEqual([2, 2])
  })
})

describe('a store locked by a frozen process', () => {
  it('pauses only the kv target while a frozen consumer holds its lock: the file target goes on, leases are renewed, and kv resumes once the lock frees', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    configure(outPath)
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(puts(100)) })).code).toBe(0)
    const kvPath = join(wal.stateDir, 'kv', 'orders.db')
    const logPath = join(wal.stateDir, 'embedded', 'orders.db')

    // A consumer frozen (SIGSTOP) at a moment it holds the kv store's write lock (and not the log's).
    let frozen: ReturnType<typeof spawnConsumer> | undefined
    for (let tries = 0; tries < 50 && frozen === undefined; tries++) {
      const a = spawnConsumer(['--lease-ttl', '1500ms', '--rate', '300/s', '--target', 'store'])
      await waitFor(() => committedSum('store') > 0, { timeoutMs: 30_000 })
      for (let i = 0; i < 40 && frozen === undefined; i++) {
        a.child.kill('SIGSTOP')
        if (writeLocked(kvPath) && !writeLocked(logPath)) frozen = a
        else {
          a.child.kill('SIGCONT')
          await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 30))
        }
      }
      if (frozen === undefined) {
        a.child.kill('SIGKILL')
        await a.closed
      }
    }
    expect(frozen, 'caught a consumer holding the kv lock').toBeDefined()
    const kvBefore = committedSum('store')

    const b = spawnConsumer(['--lease-ttl', '1500ms', '--json'])
    // The file target applies everything while kv cannot move.
    await waitFor(() => existsSync(outPath) && readFileSync(outPath, 'utf8').split('\n').length > 100 * KEYS, { timeoutMs: 60_000 })
    expect(committedSum('store')).toBe(kvBefore)
    // B holds every partition of both targets, renewing: its leases keep running ahead of the clock.
    const owner = await waitFor(() => {
      const rows = leaseRows(wal.stateDir, 'orders')
      const owners = new Set(rows.map((l) => l.owner))
      return rows.length === 16 && owners.size === 1 && rows.every((l) => l.expires_at > Date.now()) ? [...owners][0] : undefined
    })
    for (let i = 0; i < 3; i++) {
      const before = Math.min(...leaseRows(wal.stateDir, 'orders').map((l) => l.expires_at))
      await waitFor(() => Math.min(...leaseRows(wal.stateDir, 'orders').map((l) => l.expires_at)) > before, { timeoutMs: 10_000 })
      expect(leaseRows(wal.stateDir, 'orders').every((l) => l.owner === owner && l.expires_at > Date.now())).toBe(true)
    }
    // kv is paused (circuit open), not failing mutations: nothing of it dead-letters or moves.
    await waitFor(() => /"event":"circuit-open","target":"store","code":"KV_LOCKED"/.test(b.stderr()))
    expect(committedSum('store')).toBe(kvBefore)
    expect(b.stderr()).not.toMatch(/dead-lettered/)

    // The lock frees (the frozen consumer dies): kv resumes and catches up.
    frozen!.child.kill('SIGKILL')
    await frozen!.closed
    await waitFor(allCommitted, { timeoutMs: 120_000 })
    b.child.kill('SIGTERM')
    expect(await b.closed, b.stderr()).toBe(0)
    const items = kvItems(wal.stateDir, 'orders')
    expect(items).toHaveLength(KEYS)
    for (const row of items) expect(JSON.parse(row.item!), row.pk).toMatchObject({ round: 99 })
  }, 300_000)
})
