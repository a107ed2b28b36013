// Poison planted in each real log backend ahead of good records, and lossless round trips on Kafka.
import { SendMessageCommand } from '@aws-sdk/client-sqs'
import { ConfigResourceTypes } from 'kafkajs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { scanObjectField } from '../../src/lib/envelope/json-text.js'
import { TRICKY_PAYLOADS } from '../helpers/hostile-corpus.js'
import { deleteTopics, kafkaNamespace, testKafka } from '../helpers/kafka-namespace.js'
import { deleteQueues, queueUrl, sqsNamespace, testSqs } from '../helpers/sqs-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
const queues: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  wal.cleanup()
  await deleteTopics(topics.splice(0))
  await deleteQueues(queues.splice(0))
})

const put = (id: number) => ({ op: 'put', table: 't', key: { id }, item: { id } })
const POISON_ID = '01M80K6XFDG62PY7DFWNXXTEAH'

interface DlqListing {
  entries: Array<{ id: string; key: string; errorClass: string; code: string; message: string }>
}

function payloadsByKey(stdout: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of stdout.split('\n').filter(Boolean)) {
    const span = scanObjectField(line, 'payload')!
    out.set((JSON.parse(line) as { key: string }).key, line.slice(span.start, span.end))
  }
  return out
}

describe('poison in a Kafka topic', () => {
  it('is dead-lettered as poison by consume while the good records around it are applied, and tail --json stays JSON', async () => {
    const topic = await kafkaNamespace(wal, { partitions: 1 })
    topics.push(topic)
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2].map((id) => ({ key: `u${id}`, payload: put(id) }))) })).code).toBe(0)
    // What a header-copying replicator writes: wal's headers on a value that is not JSON.
    const producer = testKafka.producer()
    await producer.connect()
    await producer.send({
      topic,
      messages: [
        { key: 'bad', value: 'not json at all', headers: { 'wal-id': POISON_ID, origin: 'replicator' } },
        { key: 'late', value: '1', headers: { 'wal-id': '01M80K6XFDG62PY7DFWNXXTEAJ', 'wal-not-before': '9000000000000000' } },
      ],
    })
    await producer.disconnect()
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson([3].map((id) => ({ key: `u${id}`, payload: put(id) }))) })).code).toBe(0)

    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(tail.code).toBe(0)
    const lines = jsonLines<{ key: string; error?: string; raw?: string }>(tail.stdout)
    expect(lines.map((l) => l.key)).toEqual(['u1', 'u2', 'bad', 'late', 'u3'])
    expect(lines[2]).toMatchObject({ error: expect.stringMatching(/cannot decode the record at 0:2 of topic .*: the payload is not JSON/) })
    expect(Buffer.from(lines[2]!.raw!, 'base64').toString()).toBe('not json at all')

    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.stderr).not.toMatch(/\n\s+at /)
    // Dead-lettered during the run: exit 8 (README: exit codes).
    expect(consumed.code).toBe(8)
    expect(JSON.parse(consumed.stdout)).toMatchObject({ targets: [{ target: 'kv', applied: 3, deadLettered: 2, lag: 0 }] })
    expect(kvItems(wal.stateDir, 'orders')).toHaveLength(3)
    const dlq = JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as DlqListing
    expect(dlq.entries.map((e) => [e.key, e.errorClass, e.code])).toEqual([
      ['bad', 'poison', 'WAL_RECORD_POISON'],
      ['late', 'poison', 'WAL_RECORD_POISON'],
    ])
    expect(dlq.entries[0]!.id).toBe(POISON_ID)
  }, 120_000)

  it('keeps payloads byte-identical through produce → tail --json → produce → tail --json', async () => {
    topics.push(await kafkaNamespace(wal))
    const input = TRICKY_PAYLOADS.map((p, i) => `{"key":"t${i}","payload":${p},"headers":{"__proto__":"x"}}`).join('\n')
    expect((await wal.run(['produce', '-n', 'orders'], { input })).code).toBe(0)
    const first = (await wal.run(['tail', '-n', 'orders', '--json'])).stdout
    const stored = payloadsByKey(first)
    TRICKY_PAYLOADS.forEach((p, i) => expect(stored.get(`t${i}`)).toBe(p))
    // Into a second namespace on a fresh topic of the same cluster, and out again.
    const copyTopic = await kafkaNamespace(wal)
    topics.push(copyTopic)
    expect((await wal.run(['produce', '-n', 'orders'], { input: first })).code).toBe(0)
    const second = payloadsByKey((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(second).toEqual(stored)
    for (const line of jsonLines<{ headers: Record<string, string> }>(first)) expect(Object.keys(line.headers)).toEqual(['__proto__'])
  }, 120_000)
})

describe('a record above the topic\'s max.message.bytes', () => {
  it('is written in chunks and read back whole, between the records before and after it', async () => {
    const topic = await kafkaNamespace(wal, { partitions: 1 })
    topics.push(topic)
    const admin = testKafka.admin()
    await admin.connect()
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: String(300 * 1024) }] }] })
    const big = `"${'x'.repeat(400 * 1024)}"`
    const input = [`{"key":"a","payload":1}`, `{"key":"big","payload":${big}}`, `{"key":"c","payload":3}`].join('\n')
    const result = await wal.run(['produce', '-n', 'orders', '--json'], { input })
    expect(result.code).toBe(0)
    const acks = jsonLines<{ line: number; durable: boolean; offset: number }>(result.stdout)
    expect(acks.map((a) => [a.line, a.durable])).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ])
    // Its chunks are records of their own: the one after it is several offsets on.
    expect(acks[2]!.offset - acks[0]!.offset).toBeGreaterThan(2)
    const offsets = await admin.fetchTopicOffsets(topic)
    await admin.disconnect()
    expect(Number(offsets[0]!.high)).toBeGreaterThan(3)
    const lines = jsonLines<{ key: string; payload: unknown }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(lines.map((l) => l.key)).toEqual(['a', 'big', 'c'])
    expect(JSON.stringify(lines[1]!.payload)).toBe(big)
  }, 120_000)
})

describe('poison in an SQS queue', () => {
  it('is dead-lettered as poison by consume while the good messages are applied', async () => {
    const queue = await sqsNamespace(wal)
    queues.push(queue)
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2].map((id) => ({ key: `u${id}`, payload: put(id) }))) })).code).toBe(0)
    await testSqs.send(
      new SendMessageCommand({
        QueueUrl: await queueUrl(queue),
        MessageBody: '{"v":1,"key":"bad","payload":1,"createdAt":1e300}',
        MessageAttributes: { 'wal-envelope': { DataType: 'String', StringValue: '1' }, 'wal-id': { DataType: 'String', StringValue: POISON_ID } },
      }),
    )
    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(tail.code).toBe(0)
    const lines = jsonLines<{ key: string; error?: string }>(tail.stdout)
    expect(lines).toHaveLength(3)
    expect(lines.filter((l) => l.error !== undefined)).toEqual([expect.objectContaining({ id: POISON_ID, error: expect.stringMatching(/as a wal envelope: field "createdAt"/) })])

    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.stderr).not.toMatch(/\n\s+at /)
    // Dead-lettered during the run: exit 8 (README: exit codes).
    expect(consumed.code).toBe(8)
    expect(kvItems(wal.stateDir, 'orders')).toHaveLength(2)
    const dlq = JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as DlqListing
    expect(dlq.entries).toEqual([expect.objectContaining({ id: POISON_ID, errorClass: 'poison', code: 'WAL_RECORD_POISON', message: expect.stringMatching(/field "createdAt"/) })])
  }, 120_000)
})
