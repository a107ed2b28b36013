import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { killDaemons, post, startForegroundDaemon } from '../helpers/daemon.js'
import { deleteTopics, kafkaNamespace } from '../helpers/kafka-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  await killDaemons()
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

function part(txn: string, i: number): Record<string, unknown> {
  return { txn, key: `k${i % 20}`, payload: { op: 'put', table: `t${i % 3}`, key: { id: i % 7 }, item: { id: i % 7, seq: i } } }
}

function expectedState(parts: number): Map<string, unknown> {
  const state = new Map<string, unknown>()
  for (let i = 0; i < parts; i++) state.set(`t${i % 3}/${i % 7}`, { id: i % 7, seq: i })
  return state
}

const kvState = (): Map<string, unknown> => new Map(kvItems(wal.stateDir, 'orders').map((row) => [`${row.tbl}/${JSON.parse(row.pk)[0][1]}`, JSON.parse(row.item!) as unknown]))

describe('transactions on a Kafka namespace', () => {
  it('writes 50 parts and the marker in one Kafka transaction; consumers in 3 shards apply them all, exactly', async () => {
    topics.push(await kafkaNamespace(wal, { partitions: 6 }))
    const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([...Array.from({ length: 50 }, (_, i) => part('order-7', i)), { txn: 'order-7', commit: true }]) })
    expect(produced.code, produced.stderr).toBe(0)
    const acks = jsonLines(produced.stdout)
    expect(acks).toHaveLength(51)
    expect(acks.at(-1)).toMatchObject({ txn: 'order-7', commit: true, parts: 50, durable: true })
    // Readers see parts marked with their transaction, and the marker says where each part is.
    const tail = jsonLines<{ headers: Record<string, string>; payload: { parts?: unknown[] } }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tail).toHaveLength(51)
    expect(tail.filter((r) => r.headers['wal-txn'] === 'order-7')).toHaveLength(51)
    expect(tail.find((r) => r.headers['wal-txn-commit'] === '50')!.payload.parts).toHaveLength(50)

    const shards = await Promise.all([0, 1, 2].map((i) => wal.run(['consume', '-n', 'orders', '--shard', `${i}/3`, '--until-idle'])))
    for (const s of shards) expect(s.code, s.stderr).toBe(0)
    expect(kvState()).toEqual(expectedState(50))
  }, 180_000)

  it('applies nothing of a transaction whose producer was killed before the marker', async () => {
    topics.push(await kafkaNamespace(wal, { partitions: 2, settings: { txnTimeoutMs: 2000 } }))
    const producer = wal.spawn(['produce', '-n', 'orders', '--json'])
    let acks = ''
    producer.stdout!.setEncoding('utf8').on('data', (d: string) => (acks += d))
    producer.stderr!.resume()
    const closed = new Promise((resolve) => producer.on('close', resolve))
    producer.stdin!.write(ndjson(Array.from({ length: 5 }, (_, i) => part('lost-1', i))))
    await waitFor(() => acks.trim().split('\n').filter(Boolean).length === 5, { timeoutMs: 60_000 })
    producer.kill('SIGKILL')
    await closed
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'after', payload: { op: 'put', table: 'plain', key: { id: 1 }, item: { id: 1 } } }]) })).code).toBe(0)
    // Once the brokers abort it (txnTimeoutMs), the partitions move on: the plain mutation is applied, no part is.
    await waitFor(
      async () => {
        await wal.run(['consume', '-n', 'orders', '--until-idle', '--idle-timeout', '5s'])
        return kvItems(wal.stateDir, 'orders').length > 0
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    )
    expect(kvItems(wal.stateDir, 'orders').map((r) => r.tbl)).toEqual(['plain'])
    const tail = jsonLines<{ key: string }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tail.map((r) => r.key)).toEqual(['after'])
  }, 180_000)

  it('over HTTP, holds the Kafka transaction open between parts requests and commits it with the marker', async () => {
    topics.push(await kafkaNamespace(wal, { partitions: 3 }))
    const config = JSON.parse(readFileSync(join(wal.cwd, '.walrc.json'), 'utf8')) as Record<string, unknown>
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ ...config, daemon: { port: 0, leaseTtlMs: 1000 } }))
    const daemon = await startForegroundDaemon(wal)
    const base = `${daemon.url}/v1/namespaces/orders/transactions/h-1`
    const first = await post(`${base}/parts`, Array.from({ length: 5 }, (_, i) => part('ignored', i)).map(({ txn: _t, ...p }) => p))
    expect(first.status, JSON.stringify(first.body)).toBe(200)
    const second = await post(`${base}/parts`, Array.from({ length: 5 }, (_, i) => part('ignored', i + 5)).map(({ txn: _t, ...p }) => p))
    expect(second.status).toBe(200)
    // Not committed yet: read_committed readers see none of it.
    expect((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).toBe('')
    const committed = await post(`${base}/commit?parts=10`, {})
    expect(committed.status, JSON.stringify(committed.body)).toBe(200)
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === expectedState(10).size, { timeoutMs: 60_000 })
    expect(kvState()).toEqual(expectedState(10))
    expect(await daemon.stop()).toBe(0)
  }, 180_000)
})
