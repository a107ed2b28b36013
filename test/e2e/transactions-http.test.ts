import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { killDaemons, post, startForegroundDaemon } from '../helpers/daemon.js'
import { kvItems } from '../helpers/state.js'
import { makeSandbox, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  await killDaemons()
  wal.cleanup()
})

const put = (i: number): Record<string, unknown> => ({ key: `k${i % 4}`, payload: { op: 'put', table: `t${i % 2}`, key: { id: i % 3 }, item: { id: i % 3, seq: i } } })

describe('POST /v1/namespaces/{ns}/transactions', () => {
  it('writes the parts and then the marker, acks with the marker, and the daemon applies them all', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 4, targets: { store: { type: 'kv' } } } }, daemon: { port: 0, leaseTtlMs: 1000 } }))
    const daemon = await startForegroundDaemon(wal)
    const endpoint = `${daemon.url}/v1/namespaces/orders/transactions`

    // Without the token: 401.
    expect((await post(endpoint, [put(0)], { authorization: 'Bearer wrong' })).status).toBe(401)

    const answer = await post(`${endpoint}?txn=order-9`, Array.from({ length: 10 }, (_, i) => put(i)))
    expect(answer.status).toBe(200)
    expect(answer.body).toMatchObject({ durable: true, txn: 'order-9', parts: 10, marker: { durable: true } })
    expect(answer.body.results).toHaveLength(10)

    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 6, { timeoutMs: 30_000 })
    const state = new Map(kvItems(wal.stateDir, 'orders').map((r) => [`${r.tbl}/${JSON.parse(r.pk)[0][1]}`, JSON.parse(r.item!).seq as number]))
    // Per table and row, the last part that wrote it.
    expect(state).toEqual(new Map([['t0/0', 6], ['t0/1', 4], ['t0/2', 8], ['t1/0', 9], ['t1/1', 7], ['t1/2', 5]]))

    const explained = JSON.parse((await wal.run(['explain', 'order-9', '-n', 'orders', '--json'])).stdout) as { state: string; parts: unknown[] }
    expect(explained).toMatchObject({ state: 'committed' })
    expect(explained.parts).toHaveLength(10)

    // The same id again: refused, the first transaction stays as it was.
    const again = await post(`${endpoint}?txn=order-9`, [put(1)])
    expect(again.status).toBe(400)
    expect(again.body).toMatchObject({ durable: false, txn: 'order-9' })
    expect(String(again.body.message)).toMatch(/committed already/)

    // One bad part refuses the request whole: nothing of it is written.
    const bad = await post(endpoint, [put(0), { key: 'x', payload: { op: 'put' }, createdAt: 'soon' }, put(2)])
    expect(bad.status).toBe(400)
    expect(String(bad.body.message)).toMatch(/^part 1: field "createdAt".*nothing of the transaction was written/)
    expect((await post(`${endpoint}?txn=${encodeURIComponent('bad id\n')}`, [put(0)])).status).toBe(400)
    // Parts may not name a transaction of their own.
    expect((await post(endpoint, [{ ...put(0), txn: 'other' }])).status).toBe(400)
    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    // The 10 parts and the marker, nothing of the refused requests.
    expect(tail.stdout.trim().split('\n')).toHaveLength(11)
    expect(await daemon.stop()).toBe(0)
  })

  it('builds a transaction over several requests (parts, then commit) and applies it only once committed', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 4, targets: { store: { type: 'kv' } } } }, daemon: { port: 0, leaseTtlMs: 1000 } }))
    const daemon = await startForegroundDaemon(wal)
    const base = `${daemon.url}/v1/namespaces/orders/transactions/multi-1`
    const first = await post(`${base}/parts`, [put(0), put(1), put(2)])
    expect(first.status).toBe(200)
    expect(first.body).toMatchObject({ durable: true, txn: 'multi-1' })
    const second = await post(`${base}/parts`, { ...put(3) })
    expect(second.status).toBe(200)
    // A bad part refuses its request whole; the transaction goes on.
    expect((await post(`${base}/parts`, [put(4), { key: 'x', payload: 1, notBefore: '2030-01-01T00:00:00Z' }])).status).toBe(400)
    // Nothing is applied before the marker.
    const explained = JSON.parse((await wal.run(['explain', 'multi-1', '-n', 'orders', '--json'])).stdout) as { state: string; parts: Array<{ seq: number }> }
    expect(explained.state).toBe('open')
    expect(explained.parts.map((p) => p.seq)).toEqual([0, 1, 2, 3])
    expect(kvItems(wal.stateDir, 'orders')).toEqual([])
    // The commit names how many parts it closes: a wrong count is refused.
    expect((await post(`${base}/commit?parts=5`, {})).status).toBe(400)
    const committed = await post(`${base}/commit?parts=4`, {})
    expect(committed.status).toBe(200)
    expect(committed.body).toMatchObject({ durable: true, txn: 'multi-1', marker: { durable: true } })
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 4, { timeoutMs: 30_000 })
    // Committed: no more parts.
    expect((await post(`${base}/parts`, [put(9)])).status).toBe(400)
    expect((await post(`${daemon.url}/v1/namespaces/orders/mutations/x/parts`, [put(9)])).status).toBe(404)
    expect(await daemon.stop()).toBe(0)
  })

  it('counts a transaction aborted for want of its marker in wal_txn_aborted_total, and files it in the DLQ', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 4, txnTimeoutMs: 500, targets: { store: { type: 'kv' } } } }, daemon: { port: 0, leaseTtlMs: 1000 } }))
    const daemon = await startForegroundDaemon(wal)
    // Parts without their marker (the producer warns that they will never be applied).
    const produced = await wal.run(['produce', '-n', 'orders'], { input: [0, 1, 2].map((i) => JSON.stringify({ txn: 'no-marker', ...put(i) })).join('\n') })
    expect(produced.code).toBe(0)
    expect(produced.stderr).toMatch(/transaction "no-marker" has no marker in this input/)
    const metric = /^wal_txn_aborted_total\{namespace="orders",target="store"\} 1$/m
    await waitFor(async () => metric.test(await (await fetch(`${daemon.url}/metrics`)).text()), { timeoutMs: 30_000, intervalMs: 200 })
    expect(kvItems(wal.stateDir, 'orders')).toEqual([])
    const dlq = JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ key: string; errorClass: string }> }
    expect(dlq.entries).toEqual([expect.objectContaining({ key: 'no-marker', errorClass: 'txn-aborted' })])
    expect(await daemon.stop()).toBe(0)
  })
})
