/**
 * Changing a namespace's partition count re-maps keys: refused (exit 3, a config problem) with what
 * order is lost and how to drain first, unless `ns init --allow-remap`, which makes the change and
 * reports it. (The SQS shard count: test/integration/sqs-remap.test.ts.)
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

function configure(partitions: number): void {
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions, targets: { kv: { type: 'kv' } } } } }))
}

const put = (id: number): Record<string, unknown> => ({ op: 'put', table: 't', key: { id }, item: { id } })

describe('an embedded namespace whose partition count changes', () => {
  beforeEach(async () => {
    configure(2)
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((id) => ({ key: `k${id}`, payload: put(id) }))) })).code).toBe(0)
    configure(3)
  })

  it('produce and consume refuse with exit 3 and say how to make the change', async () => {
    const produce = await wal.run(['produce', '-n', 'orders', '-k', 'k1', '-p', '1'])
    expect(produce.code).toBe(3)
    expect(produce.stdout).toBe('')
    expect(produce.stderr).toContain('wal: namespace "orders": its embedded log has 2 partitions, but the config asks for 3')
    expect(produce.stderr).toContain('hint: or, to raise it, drain the namespace first and run: wal ns init orders --allow-remap')
    const json = await wal.run(['produce', '-n', 'orders', '-k', 'k1', '-p', '1', '--json'])
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'WAL_NAMESPACE_REMAP', exitCode: 3, details: { stored: 2, configured: 3 } } })
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(3)
  })

  it('ns init refuses without --allow-remap, saying what order is lost and how to drain first', async () => {
    const init = await wal.run(['ns', 'init', 'orders'])
    expect(init.code).toBe(3)
    expect(init.stderr).toBe(
      'wal: namespace "orders": the config asks for 3 partitions, its embedded log has 2: changing it re-maps keys to other partitions, so a key\'s mutations written before the change may be applied after ones written after it (per-key order across the change is lost)\n' +
        '  hint: to keep per-key order, drain first: stop the producers of "orders", run wal consume -n orders --until-idle (or wait until wal ns show orders shows lag 0 for every target), stop its consumers, then run wal ns init orders --allow-remap and restart them\n' +
        '  hint: or keep the current count: set partitions: 2 for namespace "orders"\n',
    )
    // Nothing changed.
    const show = await wal.run(['ns', 'show', 'orders', '--json'])
    expect(JSON.parse(show.stdout)).toMatchObject({ partitions: 2 })
  })

  it('ns init --allow-remap raises it and reports the change; what was written before and after is all applied', async () => {
    const init = await wal.run(['ns', 'init', 'orders', '--allow-remap', '--json'])
    expect(init.code).toBe(0)
    expect(JSON.parse(init.stdout)).toMatchObject({ parts: [{ role: 'log', status: 'exists', partitions: 3, remapped: { from: 2, to: 3 } }] })
    const text = await wal.run(['ns', 'init', 'orders'])
    expect(text.code).toBe(0)
    expect(text.stdout).not.toMatch(/re-mapped/) // done once: running it again changes and reports nothing
    configure(2)
    const lowered = await wal.run(['ns', 'init', 'orders', '--allow-remap'])
    expect(lowered.code).toBe(3)
    expect(lowered.stderr).toMatch(/its embedded log has 3 partitions; it cannot be lowered to 2, since the records in partition 2 would no longer be read/)
    configure(3)

    const acks = jsonLines<{ partition: number }>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([4, 5, 6, 7, 8, 9].map((id) => ({ key: `k${id}`, payload: put(id) }))) })).stdout)
    expect(new Set(acks.map((a) => a.partition)).has(2)).toBe(true)
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code).toBe(0)
    expect(JSON.parse(consumed.stdout)).toMatchObject({ targets: [{ applied: 9, lag: 0, partitions: [0, 1, 2] }] })
    expect(kvItems(wal.stateDir, 'orders')).toHaveLength(9)
  })
})
