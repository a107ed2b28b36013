// Honest exits: a consumer that cannot finish says so and which target; a run that dead-lettered says
// how many; a stop with nothing in flight is immediate; produce on a full disk names the first line lost.
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

function put(id: number): Record<string, unknown> {
  return { op: 'put', table: 't', key: { id }, item: { id } }
}

/** A privileged port nothing listens on: the endpoint is down. */
const DOWN = { type: 'http', url: 'http://127.0.0.1:2/apply', timeoutMs: 500 }

function configure(targets: Record<string, unknown>): void {
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 4, targets } } }))
}

describe('consume --until-idle', () => {
  it('exits 5 naming the target when it stays unreachable for --idle-timeout, after the healthy target applied everything', async () => {
    configure({ down: DOWN, store: { type: 'kv' } })
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((i) => ({ key: `k${i}`, payload: put(i) }))) })
    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--idle-timeout', '2s'])
    expect(result.code, result.stderr).toBe(5)
    // Progress lines (partitions taken, target paused), then one error line.
    const errors = result.stderr.split('\n').filter((l) => l.startsWith('wal: ') && !/now consuming|pausing it/.test(l))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/^wal: target "down" made no progress for 2s \(--idle-timeout\) with work left: it is paused: ECONNREFUSED.*; 3 mutations not applied yet$/)
    expect(kvItems(wal.stateDir, 'orders')).toHaveLength(3)

    // Nothing was committed past or dead-lettered: the next run still has the three to apply (--json: target, lag).
    const json = await wal.run(['consume', '-n', 'orders', '--target', 'down', '--until-idle', '--idle-timeout', '1s', '--json'])
    expect(json.code).toBe(5)
    const error = JSON.parse(json.stderr.trim().split('\n').at(-1)!) as { error: { code: string; exitCode: number; details: Record<string, unknown> } }
    expect(error.error).toMatchObject({ code: 'WAL_TARGET_UNAVAILABLE', exitCode: 5, details: { target: 'down', lag: 3 } })
  })

  it('exits 8 when the run dead-lettered mutations, saying how many, and 0 on a run that did not', async () => {
    await wal.run(['produce'], { input: ndjson([{ key: 'a', payload: put(1) }, { key: 'junk', payload: { hello: 1 } }, { key: 'junk2', payload: 'x' }]) })
    const result = await wal.run(['consume', '--until-idle'])
    expect(result.code, result.stderr).toBe(8)
    expect(result.stdout).toMatch(/^TARGET/)
    expect(result.stderr).toMatch(/^wal: 2 mutations were dead-lettered during this run \(exit 8\); see: wal dlq ls -n default$/m)
    await wal.run(['produce', '-k', 'b', '-p', JSON.stringify(put(2))])
    expect((await wal.run(['consume', '--until-idle'])).code).toBe(0)
  })
})

describe('stopping', () => {
  it('stops at once on SIGTERM when the only work left waits on a paused target', async () => {
    configure({ down: DOWN })
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((i) => ({ key: `k${i}`, payload: put(i) }))) })
    // A drain timeout far longer than the test may take: only an immediate stop passes.
    const child = wal.spawn(['consume', '-n', 'orders', '--json', '--drain-timeout', '10m'])
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await waitFor(() => err.includes('"event":"circuit-open"'))
    child.kill('SIGTERM')
    expect(await closed).toBe(0)
    expect(JSON.parse(out)).toMatchObject({ targets: [{ target: 'down', applied: 0, deadLettered: 0, lag: 3 }] })
  }, 30_000)
})

/** Whether this machine lets us mount a tmpfs (root, and not in a locked-down container). */
function canMountTmpfs(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'wal-mount-probe-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' })
    execFileSync('umount', [dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const mountable = canMountTmpfs()

describe('produce on a full disk', () => {
  // Needs `mount -t tmpfs` (root): skipped, with this reason, where the machine does not allow it.
  it.skipIf(!mountable)('exits 5 every time, naming the first line not written, with every acked mutation in the log (20 fills of a 1 MiB tmpfs)', async () => {
    const input = ndjson(Array.from({ length: 20_000 }, (_, i) => ({ key: `k${i}`, payload: { i, pad: 'x'.repeat(200) } })))
    const disk = join(wal.dir, 'disk')
    mkdirSync(disk)
    for (let fill = 0; fill < 20; fill++) {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk])
      try {
        const env = { WAL_HOME: join(disk, 'state') }
        const produced = await wal.run(['produce', '--json'], { input, env })
        expect(produced.code, `fill ${fill}: ${produced.stderr}`).toBe(5)
        const acks = jsonLines<Ack>(produced.stdout)
        const error = JSON.parse(produced.stderr.trim()) as { error: { code: string; message: string; details: { firstLineNotWritten: number } } }
        expect(produced.stderr.trim().split('\n')).toHaveLength(1)
        expect(error.error.code).toBe('WAL_BACKEND_UNAVAILABLE')
        expect(error.error.message).toMatch(/disk is full/)
        expect(error.error.message).toContain(`nothing from line ${acks.length + 1} on was written; ${acks.length} earlier mutations are durable`)
        expect(error.error.details.firstLineNotWritten).toBe(acks.length + 1)
        expect(acks.map((a) => a.line)).toEqual(Array.from({ length: acks.length }, (_, i) => i + 1))
        // Acked == in the log, exactly.
        const tailed = await wal.run(['tail', '--json'], { env })
        expect(tailed.code, tailed.stderr).toBe(0)
        expect(jsonLines<{ id: string }>(tailed.stdout).map((r) => r.id).sort()).toEqual(acks.map((a) => a.id).sort())
      } finally {
        execFileSync('umount', ['-l', disk])
      }
    }
  }, 600_000)

  it.skipIf(!mountable)('counts re-produced (duplicate) lines among the earlier mutations that are durable', async () => {
    const line = (i: number): Record<string, unknown> => ({ key: `k${i}`, idempotencyKey: `i${i}`, payload: { i, pad: 'x'.repeat(200) } })
    const disk = join(wal.dir, 'disk')
    mkdirSync(disk)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk])
    try {
      const env = { WAL_HOME: join(disk, 'state') }
      const first = await wal.run(['produce', '--json'], { input: ndjson(Array.from({ length: 20_000 }, (_, i) => line(i))), env })
      expect(first.code).toBe(5)
      const acked = jsonLines<Ack>(first.stdout).length
      // The same lines again (all duplicates now), then the ones that did not fit: the first new line fails.
      const again = await wal.run(['produce', '--json'], { input: ndjson(Array.from({ length: acked + 5000 }, (_, i) => line(i))), env })
      expect(again.code).toBe(5)
      const acks = jsonLines<Ack & { duplicate?: boolean }>(again.stdout)
      expect(acks.filter((a) => a.duplicate).length).toBeGreaterThan(0)
      const [, firstLost, durable] = /nothing from line (\d+) on was written; (\d+) earlier mutations are durable/.exec(again.stderr) ?? []
      // Every line acked before the first lost one counts, duplicates included.
      expect(Number(durable)).toBe(acks.length)
      expect(Number(firstLost)).toBe(acks.length + 1)
    } finally {
      execFileSync('umount', ['-l', disk])
    }
  }, 120_000)
})

describe('a file target on a full disk', () => {
  it.skipIf(!mountable)('pauses only that target, exits 5 naming it under --until-idle, and delivers everything once there is room', async () => {
    const disk = join(wal.dir, 'disk')
    mkdirSync(disk)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', disk])
    try {
      const outPath = join(disk, 'out.ndjson')
      configure({ out: { type: 'file', path: outPath }, store: { type: 'kv' } })
      const input = Array.from({ length: 500 }, (_, i) => ({ key: `k${i}`, payload: put(i) }))
      const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(input) })
      const ids = jsonLines<Ack>(produced.stdout).map((a) => a.id)
      const full = await wal.run(['consume', '-n', 'orders', '--until-idle', '--idle-timeout', '2s'])
      expect(full.code, full.stderr).toBe(5)
      expect(full.stderr).toMatch(/^wal: target "out" made no progress for 2s \(--idle-timeout\) with work left: it cannot make its applies durable: ENOSPC/m)
      expect(kvItems(wal.stateDir, 'orders')).toHaveLength(500)

      execFileSync('mount', ['-o', 'remount,size=8m', disk])
      const after = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(after.code, after.stderr).toBe(0)
      // Every line whole (no half line left by a write the full disk cut short), every mutation there.
      const written = new Set(jsonLines<{ id: string }>(readFileSync(outPath, 'utf8')).map((e) => e.id))
      expect(ids.filter((id) => !written.has(id))).toEqual([])
    } finally {
      execFileSync('umount', ['-l', disk])
    }
  }, 120_000)
})

describe('consume on a full disk', () => {
  it.skipIf(!mountable)('exits 5 with one error line when the state directory fills up, and applies everything once there is room', async () => {
    const disk = join(wal.dir, 'disk')
    mkdirSync(disk)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', disk])
    try {
      const env = { WAL_HOME: join(disk, 'state') }
      const input = Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, payload: { op: 'put', table: 't', key: { id: i }, item: { id: i, pad: 'y'.repeat(300) } } }))
      expect((await wal.run(['produce'], { input: ndjson(input), env })).code).toBe(0)
      // Whatever room is left is taken.
      const filler = join(disk, 'filler')
      const chunk = Buffer.alloc(4096)
      try {
        for (;;) appendFileSync(filler, chunk)
      } catch (error) {
        expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC')
      }
      const full = await wal.run(['consume', '--until-idle'], { env })
      expect(full.code, full.stderr).toBe(5)
      const errors = full.stderr.split('\n').filter((l) => l.startsWith('wal: ') && !l.includes('now consuming'))
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatch(/disk is full/)
      expect(full.stderr).not.toMatch(/unexpected|unsettled/)

      rmSync(filler)
      const after = await wal.run(['consume', '--until-idle'], { env })
      expect(after.code, after.stderr).toBe(0)
      expect(kvItems(join(disk, 'state'))).toHaveLength(300)
    } finally {
      execFileSync('umount', ['-l', disk])
    }
  }, 120_000)
})

