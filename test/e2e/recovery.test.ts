import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { jsonLines, makeSandbox, ndjson, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

function put(id: number | string, item: Record<string, unknown>): Record<string, unknown> {
  return { op: 'put', table: 'users', key: { id }, item: { id, ...item } }
}

interface Summary {
  targets: Array<{ target: string; applied: number; scheduled: number; deadLettered: number; lag: number }>
}

describe('tail --json | produce: the flags win over the nulls tail writes', () => {
  it('sends every copy to the --target only, not before the --delay', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' }, out: { type: 'file', path: outPath } } } } }))
    const input = Array.from({ length: 5 }, (_, i) => ({ key: `u${i}`, payload: put(i, { v: i }) }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect(readFileSync(outPath, 'utf8').trim().split('\n')).toHaveLength(5)

    const tailed = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(jsonLines<Envelope>(tailed.stdout).every((r) => r.target === null && r.notBefore === null)).toBe(true)
    const before = Date.now()
    const copied = await wal.run(['produce', '-n', 'orders', '--target', 'store', '--delay', '1m'], { input: tailed.stdout })
    expect(copied.stderr).toBe('')
    expect(copied.code).toBe(0)

    const copies = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).filter((r) => r.target !== null || r.notBefore !== null)
    expect(copies).toHaveLength(5)
    for (const copy of copies) {
      expect(copy.target).toBe('store')
      expect(Date.parse(copy.notBefore!) - before).toBeGreaterThanOrEqual(60_000)
    }
    // Consuming now: the copies wait for their time at the store, and the file target gets none of them.
    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(result.code).toBe(0)
    const summary = JSON.parse(result.stdout) as Summary
    expect(summary.targets.find((t) => t.target === 'store')).toMatchObject({ applied: 0, scheduled: 5 })
    expect(summary.targets.find((t) => t.target === 'out')).toMatchObject({ applied: 0, scheduled: 0 })
    expect(readFileSync(outPath, 'utf8').trim().split('\n')).toHaveLength(5)
  })

  it('keeps a line\'s own non-null target and notBefore over the flags', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' }, other: { type: 'kv', path: join(wal.dir, 'other.db') } } } } }))
    const lines = [
      { key: 'a', payload: 1, target: 'other', notBefore: '2030-01-01T00:00:00Z' },
      { key: 'b', payload: 2, target: null, notBefore: null },
    ]
    expect((await wal.run(['produce', '-n', 'orders', '--target', 'store', '--at', '2031-05-06T07:08:09Z'], { input: ndjson(lines) })).code).toBe(0)
    const byKey = Object.fromEntries(jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).map((r) => [r.key, r]))
    expect(byKey.a).toMatchObject({ target: 'other', notBefore: '2030-01-01T00:00:00.000Z' })
    expect(byKey.b).toMatchObject({ target: 'store', notBefore: '2031-05-06T07:08:09.000Z' })
  })
})
