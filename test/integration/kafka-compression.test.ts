/**
 * Compressed Kafka record batches, against the real broker and librdkafka (kcat): what wal writes with
 * each codec is compressed on the broker and reads back in wal and kcat; what kcat writes compressed
 * reads back in wal; a Kafka target compresses what it forwards.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, openSync, readSync, closeSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints, RUN_DIR } from '../../scripts/services/endpoints.js'
import { deleteTopics, kafkaNamespace, testKafka } from '../helpers/kafka-namespace.js'
import { jsonLines, makeSandbox, ndjson, type Sandbox } from '../helpers/wal.js'

const CODECS = { gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const
const topics: string[] = []
let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())
afterAll(() => deleteTopics(topics))

/** The compression codec of the first record batch in a partition's log segment, read from the broker's data directory (null when the broker is not local). */
function codecOnBroker(topic: string, partition: number): number | null {
  const file = join(RUN_DIR, 'kafka', 'data', `${topic}-${partition}`, '00000000000000000000.log')
  if (!existsSync(file)) return null
  const header = Buffer.alloc(23)
  const fd = openSync(file, 'r')
  try {
    readSync(fd, header, 0, 23, 0)
  } finally {
    closeSync(fd)
  }
  // baseOffset (8) batchLength (4) partitionLeaderEpoch (4) magic (1) crc (4) attributes (2)
  return header.readInt16BE(21) & 0x07
}

const kcat = (args: string[], input?: string) => {
  const result = spawnSync('kcat', ['-b', endpoints.kafka.brokers[0]!, ...args], { input, encoding: 'utf8', timeout: 60_000 })
  expect(result.error, 'kcat must be installed (apt-get install -y kcat)').toBeUndefined()
  expect(result.status, result.stderr).toBe(0)
  return result.stdout
}

// Compressible payloads: a codec that did nothing would be seen on the broker.
const payload = (i: number) => ({ op: 'put', table: 'docs', key: { id: i }, item: { id: i, text: 'lorem ipsum dolor sit amet '.repeat(40) } })

describe.each(Object.keys(CODECS) as Array<keyof typeof CODECS>)('a Kafka namespace with compression: %s', (codec) => {
  it('writes compressed batches that wal tail and kcat read back, and reads what kcat compressed', async () => {
    const topic = await kafkaNamespace(wal, { partitions: 1, compression: codec })
    topics.push(topic)
    const produced = await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, payload: payload(i) }))) })
    expect(produced.stderr).toBe('')
    expect(produced.code).toBe(0)
    const onBroker = codecOnBroker(topic, 0)
    if (onBroker !== null) expect(onBroker).toBe(CODECS[codec])

    const tailed = jsonLines<{ key: string; payload: { item: { text: string } } }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tailed.map((e) => e.key)).toEqual(Array.from({ length: 20 }, (_, i) => `k${i}`))
    expect(tailed[19]!.payload.item.text).toBe(payload(19).item.text)

    const read = kcat(['-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%k\t%s\n']).trim().split('\n')
    expect(read).toHaveLength(20)
    expect(read[3]!.split('\t')[0]).toBe('k3')
    expect(read[3]).toContain('lorem ipsum')

    // The other way: librdkafka compresses, wal reads.
    const fromKcat = { op: 'put', table: 'docs', key: { id: 'kcat' }, item: { by: 'kcat', codec } }
    kcat(['-P', '-t', topic, '-z', codec, '-K', '\t'], `from-kcat\t${JSON.stringify(fromKcat)}\n`)
    const all = jsonLines<{ key: string; payload: unknown }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(all).toHaveLength(21)
    expect(all[20]).toMatchObject({ key: 'from-kcat', payload: fromKcat })
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code, consumed.stderr).toBe(0)
    expect(JSON.parse(consumed.stdout)).toMatchObject({ targets: [{ applied: 21, deadLettered: 0 }] })
  })
})

describe('a Kafka target with compression', () => {
  it('forwards compressed batches that kcat reads', async () => {
    const topic = `wal-target-${Date.now().toString(36)}`
    topics.push(topic)
    const admin = testKafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
    await admin.disconnect()
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({
        clusters: { kafka: { test: { brokers: endpoints.kafka.brokers } } },
        namespaces: { orders: { targets: { replica: { type: 'kafka', cluster: 'test', topic, compression: 'zstd' } } } },
      }),
    )
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 10 }, (_, i) => ({ key: `t${i}`, payload: payload(i) }))) })).code).toBe(0)
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(consumed.stderr).not.toMatch(/error/i)
    expect(consumed.code).toBe(0)
    const onBroker = codecOnBroker(topic, 0)
    if (onBroker !== null) expect(onBroker).toBe(CODECS.zstd)
    const read = kcat(['-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%k\n']).trim().split('\n')
    expect(read).toEqual(Array.from({ length: 10 }, (_, i) => `t${i}`))
  })

  it('refuses a compression it does not know, naming the choices (exit 3)', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ clusters: { kafka: { test: { brokers: endpoints.kafka.brokers } } }, namespaces: { orders: { backend: 'kafka', cluster: 'test', compression: 'brotli' } } }))
    const result = await wal.run(['config', 'validate'])
    expect(result.code).toBe(3)
    expect(result.stderr).toContain('"none", "gzip", "snappy", "lz4" or "zstd"')
  })
})
