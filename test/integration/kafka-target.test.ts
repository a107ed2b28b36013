import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Kafka, logLevel } from 'kafkajs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { deleteTopics, kafkaNamespace } from '../helpers/kafka-namespace.js'
import { deadLetters } from '../helpers/state.js'
import { makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

const kafka = new Kafka({ clientId: 'wal-test', brokers: endpoints.kafka.brokers, logLevel: logLevel.NOTHING })

let wal: Sandbox
let topic: string
beforeEach(async () => {
  wal = makeSandbox()
  topic = `wal-target-${randomBytes(4).toString('hex')}`
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
  await admin.disconnect()
})
afterEach(async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
  await admin.disconnect()
  wal.cleanup()
})

function configure(cluster: Record<string, unknown>): void {
  writeFileSync(
    join(wal.cwd, '.walrc.json'),
    JSON.stringify({
      clusters: { kafka: { other: cluster } },
      namespaces: { orders: { targets: { replica: { type: 'kafka', cluster: 'other', topic, retry: { maxAttempts: 3, initialBackoffMs: 50 } } } } },
    }),
  )
}

async function readTopic(count: number): Promise<Array<{ key: string; value: Buffer; headers: Record<string, string>; partition: number }>> {
  const consumer = kafka.consumer({ groupId: `wal-test-${randomBytes(4).toString('hex')}` })
  const seen: Array<{ key: string; value: Buffer; headers: Record<string, string>; partition: number }> = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ message, partition }) => {
        const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]))
        seen.push({ key: String(message.key), value: message.value!, headers, partition })
      },
    })
    await waitFor(() => seen.length >= count, { timeoutMs: 60_000 })
    return seen
  } finally {
    await consumer.disconnect()
  }
}

describe('the Kafka target', () => {
  it('forwards mutations to a topic with their keys, headers and values, in per-key order', async () => {
    configure({ brokers: endpoints.kafka.brokers })
    const input = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 5}`, payload: { i }, headers: { source: 'crm' } }))
    input.push({ key: 'bin', payload: Buffer.from([0, 1, 255]).toString('base64'), payloadEncoding: 'base64', headers: { source: 'raw' } } as never)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code).toBe(0)
    expect(JSON.parse(consumed.stdout).targets[0]).toMatchObject({ target: 'replica', applied: 31, lag: 0 })
    const records = await readTopic(31)
    expect(records).toHaveLength(31)
    for (let k = 0; k < 5; k++) {
      const own = records.filter((r) => r.key === `k${k}`)
      expect(new Set(own.map((r) => r.partition)).size).toBe(1)
      expect(own.map((r) => JSON.parse(r.value.toString()).i)).toEqual([0, 1, 2, 3, 4, 5].map((n) => k + 5 * n))
      expect(own[0]!.headers).toMatchObject({ source: 'crm', 'wal-id': expect.stringMatching(/^[0-9A-Z]{26}$/) })
    }
    expect(records.find((r) => r.key === 'bin')!.value).toEqual(Buffer.from([0, 1, 255]))
  })

  it('forwards the pages of a Kafka namespace in batches: every record arrives once, exact, with its headers, in per-key order', async () => {
    const source = await kafkaNamespace(wal, { partitions: 4, targets: { replica: { type: 'kafka', cluster: 'test', topic } } })
    try {
      const keys = 25
      const input = Array.from({ length: 2000 }, (_, i) => ({ key: `k${i % keys}\u001b[31m`, payload: { i, text: `é${'x'.repeat(i % 300)}` }, headers: { source: 'crm', n: String(i) } }))
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(consumed.code).toBe(0)
      expect(JSON.parse(consumed.stdout).targets[0]).toMatchObject({ target: 'replica', applied: 2000, retried: 0, deadLettered: 0, lag: 0 })
      const records = await readTopic(2000)
      // Nothing more than once: the batches were not sent again one by one.
      await new Promise((resolve) => setTimeout(resolve, 1000))
      expect(records).toHaveLength(2000)
      for (let k = 0; k < keys; k++) {
        const own = records.filter((r) => r.key === `k${k}\u001b[31m`)
        expect(new Set(own.map((r) => r.partition)).size).toBe(1)
        expect(own.map((r) => JSON.parse(r.value.toString()))).toEqual(input.filter((m) => m.key === `k${k}\u001b[31m`).map((m) => m.payload))
        expect(own.map((r) => r.headers.n)).toEqual(input.filter((m) => m.key === `k${k}\u001b[31m`).map((m) => m.headers.n))
        expect(own.every((r) => r.headers.source === 'crm')).toBe(true)
      }
    } finally {
      await deleteTopics([source])
    }
  })

  it('dead-letters alone a record over the topic\'s max.message.bytes in a forwarded page; the rest of the page arrives once, in per-key order', async () => {
    const admin = kafka.admin()
    await admin.connect()
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2 /* TOPIC */, name: topic, configEntries: [{ name: 'max.message.bytes', value: '20000' }] }] })
    await admin.disconnect()
    configure({ brokers: endpoints.kafka.brokers })
    const keys = 10
    const input = Array.from({ length: 500 }, (_, i) => ({ key: `k${i % keys}`, payload: { i, pad: i === 123 ? 'y'.repeat(30_000) : '' } }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    // Exit 8: one mutation was dead-lettered.
    expect(consumed.code).toBe(8)
    expect(JSON.parse(consumed.stdout).targets[0]).toMatchObject({ target: 'replica', applied: 499, deadLettered: 1, lag: 0 })
    const dead = deadLetters(wal.stateDir, 'orders')
    expect(dead).toHaveLength(1)
    expect(dead[0]).toMatchObject({ target: 'replica', key: 'k3', error_class: 'fatal' })
    expect(JSON.parse(dead[0]!.envelope).payload.i).toBe(123)
    const records = await readTopic(499)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(records).toHaveLength(499)
    for (let k = 0; k < keys; k++) {
      const own = records.filter((r) => r.key === `k${k}`)
      expect(own.map((r) => JSON.parse(r.value.toString()).i)).toEqual(input.map((m, i) => ({ m, i })).filter(({ m, i }) => m.key === `k${k}` && i !== 123).map(({ i }) => i))
    }
  })

  it('reaches a cluster over SCRAM, and pauses (without dead-lettering) when the password is wrong', async () => {
    configure({ brokers: endpoints.kafka.saslBrokers, sasl: { mechanism: 'scram-sha-256', username: endpoints.kafka.scram.username, password: endpoints.kafka.scram.password } })
    await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])
    expect(JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout).targets[0]).toMatchObject({ applied: 1 })
    expect(await readTopic(1)).toHaveLength(1)

    configure({ brokers: endpoints.kafka.saslBrokers, sasl: { mechanism: 'scram-sha-256', username: endpoints.kafka.scram.username, password: 'wrong' } })
    await wal.run(['produce', '-n', 'orders', '-k', 'b', '-p', '2'])
    const child = wal.spawn(['consume', '-n', 'orders', '--json', '--drain-timeout', '1s'])
    let err = ''
    child.stdout!.resume()
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await waitFor(() => err.includes('circuit-open'), { timeoutMs: 30_000 })
    expect(err).toMatch(/"event":"circuit-open","target":"replica".*(SASL|[Aa]uthentication)/)
    child.kill('SIGTERM')
    expect(await closed).toBe(0)
    expect(deadLetters(wal.stateDir, 'orders')).toEqual([])
  })

  it('shows the cluster password redacted in config show', async () => {
    configure({ brokers: endpoints.kafka.saslBrokers, sasl: { mechanism: 'scram-sha-256', username: 'wal', password: 'very-secret' } })
    const shown = await wal.run(['config', 'show'])
    expect(shown.code).toBe(0)
    expect(shown.stdout).not.toContain('very-secret')
    expect(shown.stdout).toContain('<redacted>')
  })
})
