/**
 * Per-key order when a key's mutations wait: behind a delayed mutation of their key they wait in the
 * schedule, and once it is due they follow it in log order — as a run, not one per commit, so a hot
 * key's backlog drains as fast as any other work.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer } from '../helpers/http-target-server.js'
import { committedOffsets, highMarks, kvItems, scheduled } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

describe('a key behind a delayed mutation', () => {
  it('applies the thousands of mutations queued behind a delayed one in log order once it is due, together with the cold keys', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' }, out: { type: 'file', path: outPath } } } } }),
    )
    const put = (key: string, seq: number) => ({ key, payload: { op: 'put', table: 't', key: { id: key }, item: { key, seq } } })
    const lines: unknown[] = [{ ...put('hot', 0), notBefore: Date.now() + 3000 }]
    for (let seq = 1; seq < 12_000; seq++) lines.push(put(seq % 2 === 0 ? 'hot' : `c${seq % 50}`, seq))
    const produced = await wal.run(['produce', '-n', 'orders'], { input: ndjson(lines) })
    expect(produced.code, produced.stderr).toBe(0)

    const consumer = wal.spawn(['consume', '-n', 'orders'])
    consumer.stdout!.resume()
    let stderr = ''
    consumer.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const closed = new Promise<number | null>((resolve) => consumer.on('close', resolve))
    // Everything applied: offsets at the end of the log for both targets, and nothing left in the schedule.
    const done = (): boolean => {
      const high = highMarks(wal.stateDir, 'orders')
      const committed = committedOffsets(wal.stateDir, 'orders')
      const offsetsDone = ['store', 'out'].every((t) => [...high].every(([p, h]) => committed.find((r) => r.target === t && r.partition === p)?.next_offset === h))
      return offsetsDone && scheduled(wal.stateDir, 'orders').length === 0
    }
    // A generous deadline that only catches a drain of one mutation per commit (6,000 of them, minutes).
    await waitFor(done, { timeoutMs: 120_000, intervalMs: 200 })
    consumer.kill('SIGTERM')
    expect(await closed, stderr).toBe(0)

    const written = jsonLines<{ key: string; payload: { item: { seq: number } } }>(readFileSync(outPath, 'utf8'))
    expect(written).toHaveLength(12_000)
    const hot = written.filter((l) => l.key === 'hot').map((l) => l.payload.item.seq)
    expect(hot).toEqual(Array.from({ length: 6000 }, (_, i) => 2 * i))
    const items = new Map(kvItems(wal.stateDir, 'orders').map((r) => [JSON.parse(r.item!).key as string, JSON.parse(r.item!).seq as number]))
    expect(items.get('hot')).toBe(11_998)
    expect(items.size).toBe(26)
  }, 200_000)

  it('keeps the rest of the run waiting when the delayed head fails and backs off into the schedule again', async () => {
    const server = await startTargetServer()
    try {
      writeFileSync(
        join(wal.cwd, '.walrc.json'),
        JSON.stringify({
          namespaces: { orders: { partitions: 1, retry: { initialBackoffMs: 6000, jitter: 0, maxAttempts: 5 }, targets: { api: { type: 'http', url: server.url } } } },
        }),
      )
      // The head of the run answers 503 once: it goes back to the schedule for 6 s, the run behind it waits.
      server.failFirst('hot', 1)
      const lines: unknown[] = [{ key: 'hot', payload: { seq: 0 }, notBefore: Date.now() + 2000 }]
      for (let seq = 1; seq <= 300; seq++) lines.push({ key: seq % 3 === 0 ? 'cold' : 'hot', payload: { seq } })
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(lines) })).code).toBe(0)

      const consumer = wal.spawn(['consume', '-n', 'orders'])
      consumer.stdout!.resume()
      consumer.stderr!.resume()
      const closed = new Promise<number | null>((resolve) => consumer.on('close', resolve))
      const applied = (key: string): number[] => server.received.filter((r) => r.key === key && r.status === 200).map((r) => (JSON.parse(r.body) as { seq: number }).seq)
      await waitFor(() => applied('hot').length >= 201 && scheduled(wal.stateDir, 'orders').length === 0, { timeoutMs: 120_000, intervalMs: 100 })
      consumer.kill('SIGTERM')
      expect(await closed).toBe(0)

      const hot = applied('hot')
      expect(hot).toEqual(lines.map((_, seq) => seq).filter((seq) => seq === 0 || seq % 3 !== 0))
      expect(server.received.filter((r) => r.key === 'hot' && r.status === 503).map((r) => JSON.parse(r.body) as unknown)).toEqual([{ seq: 0 }])
      expect(applied('cold')).toEqual(lines.map((_, seq) => seq).filter((seq) => seq > 0 && seq % 3 === 0))
    } finally {
      await server.close()
    }
  }, 200_000)
})
