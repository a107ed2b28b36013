import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { deleteTopics, kafkaNamespace } from '../helpers/kafka-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
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
})
