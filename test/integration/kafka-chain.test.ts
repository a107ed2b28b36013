// Cross-region replication: namespace A forwards to a Kafka topic through a Kafka target, and that topic
// is namespace B's log (the other region), consumed into B's kv store.
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { deleteTopics, testKafka } from '../helpers/kafka-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let topic: string
beforeEach(() => {
  wal = makeSandbox()
  topic = `wal-chain-${randomBytes(4).toString('hex')}`
})
afterEach(async () => {
  wal.cleanup()
  await deleteTopics([topic])
})

interface Summary {
  targets: Array<{ target: string; applied: number; deadLettered: number; lag: number }>
}

async function setTopicLimit(bytes: number): Promise<void> {
  const admin = testKafka.admin()
  await admin.connect()
  try {
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2 /* TOPIC */, name: topic, configEntries: [{ name: 'max.message.bytes', value: String(bytes) }] }] })
  } finally {
    await admin.disconnect()
  }
}

describe('two namespaces chained through a Kafka target', () => {
  it('applies in region B every mutation meant for it — addressed to the forwarding target, dead-lettered and replayed — in per-key order', async () => {
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({
        clusters: { kafka: { main: { brokers: endpoints.kafka.brokers } } },
        namespaces: {
          'region-a': {
            partitions: 4,
            targets: { 'eu-west': { type: 'kafka', cluster: 'main', topic, retry: { maxAttempts: 1 } }, local: { type: 'kv' } },
          },
          'region-b': { backend: 'kafka', cluster: 'main', topic, partitions: 4, targets: { kv: { type: 'kv' } } },
        },
      }),
    )
    // ns init of A creates its Kafka target's topic; B's init finds it as its log and adds the rest.
    const initA = await wal.run(['ns', 'init', '-n', 'region-a', '--json'])
    expect(initA.code).toBe(0)
    expect(JSON.parse(initA.stdout).parts).toContainEqual(expect.objectContaining({ role: 'target eu-west', name: topic, status: 'created', partitions: 4 }))
    expect((await wal.run(['ns', 'init', 'region-b'])).code).toBe(0)

    // Records above 4 KB are refused by the topic for now: those mutations are dead-lettered in A.
    await setTopicLimit(4096)
    const keys = 20
    const input = Array.from({ length: 1000 }, (_, i) => {
      const target = i % 10 === 3 ? 'eu-west' : i % 10 === 7 ? 'local' : null
      const pad = i % 13 === 5 ? 'x'.repeat(6000) : ''
      return { key: `k${i % keys}`, payload: { op: 'put', table: 't', key: { id: `k${i % keys}` }, item: { i, pad } }, ...(target ? { target } : {}) }
    })
    const produced = await wal.run(['produce', '-n', 'region-a', '--json'], { input: ndjson(input) })
    expect(produced.code).toBe(0)
    const ids = jsonLines<{ id: string; line: number }>(produced.stdout)
    const idOf = new Map(ids.map((a) => [a.line - 1, a.id]))
    const forB = input.map((m, i) => ({ ...m, i })).filter((m) => m.target !== 'local')
    const tooLarge = forB.filter((m) => m.payload.item.pad !== '')

    const first = await wal.run(['consume', '-n', 'region-a', '--until-idle', '--json'])
    // Exit 8: the records too large for the topic were dead-lettered.
    expect(first.code).toBe(8)
    const firstStats = (JSON.parse(first.stdout) as Summary).targets.find((t) => t.target === 'eu-west')!
    expect(firstStats).toMatchObject({ applied: forB.length - tooLarge.length, deadLettered: tooLarge.length, lag: 0 })

    // The limit is raised; the dead letters go back to the Kafka target.
    await setTopicLimit(1024 * 1024)
    const replay = await wal.run(['dlq', 'replay', '-n', 'region-a', '--json'])
    expect(replay.code).toBe(0)
    expect(JSON.parse(replay.stdout)).toMatchObject({ replayed: tooLarge.length })
    const second = await wal.run(['consume', '-n', 'region-a', '--until-idle', '--json'])
    expect(second.code).toBe(0)
    expect((JSON.parse(second.stdout) as Summary).targets.find((t) => t.target === 'eu-west')).toMatchObject({ applied: tooLarge.length, deadLettered: 0, lag: 0 })

    // Region B: everything meant for it, nothing addressed to A's local target, each key's records in order.
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'region-b', '--json'])).stdout)
    expect(tailed.map((e) => e.id).sort()).toEqual(forB.map((m) => idOf.get(m.i)!).sort())
    expect(tailed.every((e) => e.target === null && e.attempts === 0)).toBe(true)
    for (let k = 0; k < keys; k++) {
      const own = tailed.filter((e) => e.key === `k${k}`).map((e) => (e.payload as { item: { i: number } }).item.i)
      const onTime = forB.filter((m) => m.key === `k${k}` && m.payload.item.pad === '').map((m) => m.i)
      const late = forB.filter((m) => m.key === `k${k}` && m.payload.item.pad !== '').map((m) => m.i)
      expect(own).toEqual([...onTime, ...late])
    }
    const consumedB = await wal.run(['consume', '-n', 'region-b', '--until-idle', '--json'])
    expect(consumedB.code).toBe(0)
    expect((JSON.parse(consumedB.stdout) as Summary).targets[0]).toMatchObject({ applied: forB.length, deadLettered: 0, lag: 0 })
    // Each key ends as its newest mutation meant for B (by createdAt: late replays do not overwrite it).
    // (Keys k7 and k17 only ever had mutations for A's local target: B never hears of them.)
    const items = kvItems(wal.stateDir, 'region-b')
    const keysForB = [...new Set(forB.map((m) => m.key))]
    expect(items).toHaveLength(keysForB.length)
    expect(keysForB).not.toContain('k7')
    for (const key of keysForB) {
      const item = items.find((row) => row.pk.includes(`"${key}"`))
      const newest = Math.max(...forB.filter((m) => m.key === key).map((m) => m.i))
      expect(JSON.parse(item!.item!)).toMatchObject({ i: newest })
    }
  })
})

describe('a Kafka target whose topic is read by a namespace with the consistent_random partitioner', () => {
  it('puts each key in the partition where that namespace (and kcat) put it, so a key\'s forwarded and own mutations stay in one partition, in order', async () => {
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({
        clusters: { kafka: { main: { brokers: endpoints.kafka.brokers } } },
        namespaces: {
          'region-a': { partitions: 4, targets: { 'eu-west': { type: 'kafka', cluster: 'main', topic, partitioner: 'consistent_random' } } },
          'region-b': { backend: 'kafka', cluster: 'main', topic, partitions: 4, partitioner: 'consistent_random', targets: { kv: { type: 'kv' } } },
        },
      }),
    )
    expect((await wal.run(['ns', 'init', '-n', 'region-a'])).code).toBe(0)
    expect((await wal.run(['ns', 'init', 'region-b'])).code).toBe(0)
    const keys = Array.from({ length: 12 }, (_, k) => `user-${k}`)
    // First a mutation of each key forwarded from A, then one produced in B itself.
    const produceA = await wal.run(['produce', '-n', 'region-a'], { input: ndjson(keys.map((key) => ({ key, payload: { from: 'a' } }))) })
    expect(produceA.code, produceA.stderr).toBe(0)
    const consumedA = await wal.run(['consume', '-n', 'region-a', '--until-idle'])
    expect(consumedA.code, consumedA.stderr).toBe(0)
    const produceB = await wal.run(['produce', '-n', 'region-b'], { input: ndjson(keys.map((key) => ({ key, payload: { from: 'b' } }))) })
    expect(produceB.code, produceB.stderr).toBe(0)

    const tail = await wal.run(['tail', '-n', 'region-b', '--json'])
    expect(tail.code, tail.stderr).toBe(0)
    const records = jsonLines<Envelope>(tail.stdout)
    expect(records).toHaveLength(2 * keys.length)
    for (const key of keys) {
      const ofKey = records.filter((r) => r.key === key)
      expect(new Set(ofKey.map((r) => r.partition)).size, key).toBe(1)
      expect(ofKey.sort((x, y) => x.offset - y.offset).map((r) => (r.payload as { from: string }).from), key).toEqual(['a', 'b'])
    }
  })
})
