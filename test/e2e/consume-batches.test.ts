/**
 * The kv and file targets take a page of ready mutations in one call. What a user sees does not change:
 * a mutation that cannot be applied fails alone, and a consumer killed while it applies loses nothing
 * that was acked (at least once: what was applied and not committed is applied again).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { committedOffsets, deadLetters, kvItems } from '../helpers/state.js'
import { makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

interface Summary {
  targets: Array<{ target: string; applied: number; deadLettered: number; lag: number }>
}

function configure(outPath: string): void {
  writeFileSync(
    join(wal.cwd, '.walrc.json'),
    JSON.stringify({ namespaces: { orders: { partitions: 4, targets: { store: { type: 'kv' }, out: { type: 'file', path: outPath } } } } }),
  )
}

const put = (i: number) => ({ key: `k${i % 97}`, payload: { op: 'put', table: 'orders', key: { id: i }, item: { id: i, n: `item ${i}` } } })

/** The file target's lines: id and key of each. */
function fileLines(path: string): Array<{ id: string; key: string; payload: unknown }> {
  if (!existsSync(path)) return []
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { id: string; key: string; payload: unknown })
}

describe('consume applies pages in batches', () => {
  it('dead-letters the one mutation of a page the kv target cannot apply; the rest of the page lands once at both targets, in key order', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    configure(outPath)
    const input = Array.from({ length: 3000 }, (_, i) => (i === 1234 ? { key: 'k1234', payload: { hello: 'not an operation' } } : put(i)))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)

    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(result.code, result.stderr).toBe(8)
    const summary = JSON.parse(result.stdout) as Summary
    expect(summary.targets).toEqual([
      expect.objectContaining({ target: 'store', applied: 2999, deadLettered: 1, lag: 0 }),
      expect.objectContaining({ target: 'out', applied: 3000, deadLettered: 0, lag: 0 }),
    ])
    const items = kvItems(wal.stateDir, 'orders')
    expect(items).toHaveLength(2999)
    expect(items.some((r) => r.pk === '[["id",1234]]')).toBe(false)
    const dead = deadLetters(wal.stateDir, 'orders')
    expect(dead.map((d) => [d.target, d.key, d.error_class, d.code])).toEqual([['store', 'k1234', 'fatal', 'NOT_AN_OPERATION']])

    const lines = fileLines(outPath)
    expect(lines).toHaveLength(3000)
    expect(new Set(lines.map((l) => l.id)).size).toBe(3000)
    const byKey = new Map<string, string[]>()
    for (const line of lines) byKey.set(line.key, [...(byKey.get(line.key) ?? []), line.id])
    for (const ids of byKey.values()) expect(ids).toEqual([...ids].sort())
  })

  it('SIGKILL while applying, then a restart: every acked mutation is applied, at least once', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    configure(outPath)
    const count = 30_000
    const produced = await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: count }, (_, i) => put(i))) })
    expect(produced.code, produced.stderr).toBe(0)

    const child = wal.spawn(['consume', '-n', 'orders'])
    child.stdout!.resume()
    child.stderr!.resume()
    const exited = new Promise((resolve) => child.on('exit', resolve))
    // Killed once some pages are committed and while it is still applying the rest.
    await waitFor(() => committedOffsets(wal.stateDir, 'orders').reduce((sum, r) => sum + r.next_offset, 0) > 0, { timeoutMs: 120_000 })
    child.kill('SIGKILL')
    await exited

    const rest = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(rest.code, rest.stderr).toBe(0)
    const summary = JSON.parse(rest.stdout) as Summary
    for (const t of summary.targets) expect(t).toMatchObject({ deadLettered: 0, lag: 0 })

    const items = kvItems(wal.stateDir, 'orders')
    expect(items).toHaveLength(count)
    for (const row of items) {
      const id = (JSON.parse(row.pk) as Array<[string, number]>)[0]![1]
      expect(JSON.parse(row.item!)).toEqual({ id, n: `item ${id}` })
    }
    // Whole lines only, and every mutation at least once.
    const lines = fileLines(outPath)
    const ids = new Set(lines.map((l) => l.id))
    expect(ids.size).toBe(count)
  }, 180_000)
})
