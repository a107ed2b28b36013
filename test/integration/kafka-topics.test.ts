// Topics as wal creates, checks and writes to them: ns init on fresh namespaces, a Kafka target's topic,
// and records larger than a topic takes.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { post, startForegroundDaemon } from '../helpers/daemon.js'
import { deleteTopics, kafkaNamespace, testKafka } from '../helpers/kafka-namespace.js'
import { jsonLines, makeSandbox, ndjson, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

async function setTopicConfig(topic: string, name: string, value: string): Promise<void> {
  const admin = testKafka.admin()
  await admin.connect()
  try {
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2 /* TOPIC */, name: topic, configEntries: [{ name, value }] }] })
  } finally {
    await admin.disconnect()
  }
}

describe('wal ns init on Kafka', () => {
  it('initializes 25 fresh namespaces back to back, each on the first try, every partition with a leader', async () => {
    const names = Array.from({ length: 25 }, (_, i) => `ns${i}`)
    const prefix = `wal-init-${randomBytes(3).toString('hex')}`
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({
        clusters: { kafka: { main: { brokers: endpoints.kafka.brokers } } },
        namespaces: Object.fromEntries(names.map((n) => [n, { backend: 'kafka', cluster: 'main', topic: `${prefix}-${n}`, partitions: 8 }])),
      }),
    )
    topics.push(...names.map((n) => `${prefix}-${n}`))
    for (const name of names) {
      // Half by argument, half with -n: both name the namespace.
      const init = await wal.run(name.endsWith('1') || name.endsWith('3') ? ['ns', 'init', '-n', name, '--json'] : ['ns', 'init', name, '--json'])
      expect(init.code, `${name}: ${init.stderr}`).toBe(0)
      expect((JSON.parse(init.stdout) as { parts: Array<{ status: string }> }).parts.map((p) => p.status)).toEqual(['created', 'created', 'created', 'created', 'created'])
    }
    const admin = testKafka.admin()
    await admin.connect()
    try {
      const { topics: described } = await admin.fetchTopicMetadata({ topics: names.map((n) => `${prefix}-${n}`) })
      for (const t of described) {
        expect(t.partitions).toHaveLength(8)
        expect(t.partitions.every((p) => p.leader >= 0)).toBe(true)
      }
      // The compacted topics roll hourly, so compaction drops what was overwritten within hours, not 7 days.
      const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: ['wal-state', 'wal-schedule'].map((s) => ({ type: 2 /* TOPIC */, name: `${prefix}-ns0.${s}`, configNames: ['cleanup.policy', 'segment.ms'] })) })
      for (const r of resources) {
        expect(Object.fromEntries(r.configEntries.map((e) => [e.configName, e.configValue])), r.resourceName).toEqual({ 'cleanup.policy': 'compact', 'segment.ms': '3600000' })
      }
    } finally {
      await admin.disconnect()
    }
    // Written to at once, and shown by either spelling.
    expect((await wal.run(['produce', '-n', 'ns24', '-k', 'a', '-p', '1'])).code).toBe(0)
    const shown = await wal.run(['ns', 'show', '-n', 'ns24', '--json'])
    expect(shown.code).toBe(0)
    expect(JSON.parse(shown.stdout)).toMatchObject({ name: 'ns24', records: 1 })
    expect((await wal.run(['ns', 'show', 'ns1', '-n', 'ns2'])).code).toBe(2)
  }, 300_000)
})

describe("a Kafka target's topic", () => {
  function configure(topic: string): void {
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({
        clusters: { kafka: { main: { brokers: endpoints.kafka.brokers } } },
        namespaces: { orders: { partitions: 3, targets: { replica: { type: 'kafka', cluster: 'main', topic } } } },
      }),
    )
  }

  it('stops consume at start when it does not exist (exit 3), and is created by ns init with the namespace\'s partitions', async () => {
    const topic = `wal-target-${randomBytes(4).toString('hex')}`
    topics.push(topic)
    configure(topic)
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])).code).toBe(0)
    const refused = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(refused.code).toBe(3)
    expect(JSON.parse(refused.stderr)).toMatchObject({ error: { code: 'WAL_TARGET_TOPIC', exitCode: 3 } })
    expect(JSON.parse(refused.stderr).error.message).toContain(`topic "${topic}" does not exist`)

    const init = await wal.run(['ns', 'init', 'orders', '--json'])
    expect(init.code).toBe(0)
    expect(JSON.parse(init.stdout).parts).toContainEqual(expect.objectContaining({ role: 'target replica', name: topic, status: 'created', partitions: 3 }))
    const again = await wal.run(['ns', 'init', 'orders', '--json'])
    expect(JSON.parse(again.stdout).parts).toContainEqual(expect.objectContaining({ role: 'target replica', status: 'exists' }))
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code).toBe(0)
    expect(JSON.parse(consumed.stdout).targets[0]).toMatchObject({ applied: 1, deadLettered: 0 })
  })
})

describe('a record larger than the topic takes', () => {
  it('is written in chunks when its payload is what is large; one whose headers alone pass the limit is rejected on its own (exit 4, naming max.message.bytes and how to raise it); the lines around it, and a stream of thousands of records, are written', async () => {
    const topic = await kafkaNamespace(wal, { partitions: 1 })
    topics.push(topic)
    await setTopicConfig(topic, 'max.message.bytes', '20000')
    const input = [
      { key: 'k', payload: { n: 1 } },
      { key: 'k', payload: { n: 2 }, headers: { big: 'h'.repeat(30_000) } },
      { key: 'k', payload: { n: 3 } },
      { key: 'k', payload: { n: 4, pad: 'x'.repeat(30_000) } },
    ]
    const result = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(input) })
    expect(result.code).toBe(4)
    const lines = jsonLines<{ line: number; durable: boolean; error?: { code: string; message: string; suggestions: string[] } }>(result.stdout)
    expect(lines.map((l) => [l.line, l.durable])).toEqual([
      [1, true],
      [2, false],
      [3, true],
      [4, true],
    ])
    const stored = jsonLines<{ payload: { n: number; pad?: string } }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(stored.map((e) => e.payload.n)).toEqual([1, 3, 4])
    expect(stored[2]!.payload.pad).toBe('x'.repeat(30_000))
    expect(lines[1]!.error).toMatchObject({ code: 'WAL_RECORD_TOO_LARGE' })
    expect(lines[1]!.error!.message).toContain('max.message.bytes 20000')
    expect(lines[1]!.error!.suggestions[0]).toContain(`--entity-name ${topic} --add-config max.message.bytes=`)

    // Through the daemon's HTTP API: the batch is answered per mutation, the too-large one with 400.
    const daemon = await startForegroundDaemon(wal)
    try {
      const answer = await post(`${daemon.url}/v1/namespaces/orders/mutations`, input.map((m) => ({ ...m, payload: { ...m.payload, via: 'http' } })))
      expect(answer.status).toBe(400)
      const results = answer.body.results as Array<{ index: number; durable: boolean; error?: { code: string } }>
      expect(results.map((r) => [r.index, r.durable, r.error?.code])).toEqual([
        [0, true, undefined],
        [1, false, 'WAL_RECORD_TOO_LARGE'],
        [2, true, undefined],
        [3, true, undefined],
      ])
    } finally {
      await daemon.stop()
    }

    // Many small records in one produce: sent in requests under the topic's limit, all durable.
    const many = Array.from({ length: 3000 }, (_, n) => ({ key: 'k', payload: { n, pad: 'y'.repeat(200) } }))
    const stream = await wal.run(['produce', '-n', 'orders'], { input: ndjson(many) })
    expect(stream.code, stream.stderr).toBe(0)
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tailed.map((e) => (e.payload as { n: number }).n)).toEqual([1, 3, 4, 1, 3, 4, ...many.map((m) => m.payload.n)])
  })
})

describe('a namespace with partitioner consistent_random', () => {
  it("puts a key on the partition librdkafka's default partitioner (kcat) picks, so their records of a key share it", async () => {
    const topic = `wal-crc-${randomBytes(4).toString('hex')}`
    topics.push(topic)
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({
        clusters: { kafka: { main: { brokers: endpoints.kafka.brokers } } },
        namespaces: { orders: { backend: 'kafka', cluster: 'main', topic, partitions: 7, partitioner: 'consistent_random' } },
      }),
    )
    expect((await wal.run(['ns', 'init', 'orders'])).code).toBe(0)
    const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`)
    // kcat (librdkafka) with its default partitioner named explicitly: key:value lines.
    const kcat = spawnSync('kcat', ['-P', '-b', endpoints.kafka.brokers[0]!, '-t', topic, '-K', '\t', '-X', 'partitioner=consistent_random'], {
      input: keys.map((k) => `${k}\t{"from":"kcat"}`).join('\n') + '\n',
      encoding: 'utf8',
    })
    expect(kcat.error, 'kcat must be installed (apt-get install -y kcat)').toBeUndefined()
    expect(kcat.status, kcat.stderr).toBe(0)
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(keys.map((key) => ({ key, payload: { from: 'wal' } }))) })).code).toBe(0)
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tailed).toHaveLength(keys.length * 2)
    const partitions = new Set<number>()
    for (const key of keys) {
      const own = tailed.filter((e) => e.key === key)
      expect(own.map((e) => (e.payload as { from: string }).from).sort()).toEqual(['kcat', 'wal'])
      expect(new Set(own.map((e) => e.partition)).size).toBe(1)
      partitions.add(own[0]!.partition)
    }
    // The keys are spread (not all on one partition by accident).
    expect(partitions.size).toBeGreaterThan(3)
  })
})
