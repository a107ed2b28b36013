import { readFileSync } from 'node:fs'
import { createRequire, Module } from 'node:module'
import { dirname } from 'node:path'
import { describe, expect, it } from 'vitest'

import { describeKafkaError, kafkaFault, loadKafkajs, riding } from '../../src/lib/kafka/client.js'

describe('kafkajs as wal loads it', () => {
  it('groups a send by partition in one pass, keeping each partition in send order', async () => {
    await loadKafkajs()
    const require = createRequire(import.meta.url)
    const group = require('kafkajs/src/producer/groupMessagesPerPartition.js') as (args: object) => Record<number, Array<{ n: number; partition: number }>>
    const messages = Array.from({ length: 20_000 }, (_, n) => ({ n, partition: (n * 7) % 5 }))
    const grouped = group({ topic: 't', partitionMetadata: [{}], messages, partitioner: ({ message }: { message: { partition: number } }) => message.partition })
    expect(Object.keys(grouped).sort()).toEqual(['0', '1', '2', '3', '4'])
    for (const [partition, list] of Object.entries(grouped)) {
      expect(list.length).toBe(4000)
      expect(list.every((m) => m.partition === Number(partition))).toBe(true)
      expect(list.map((m) => m.n)).toEqual([...list.map((m) => m.n)].sort((a, b) => a - b))
    }
    expect(group({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({})
  })
})

describe('records as wal encodes them for kafkajs', () => {
  type Encode = (record: object) => { buffer: Buffer }
  const require = createRequire(import.meta.url)
  const path = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/index.js')
  /** kafkajs's own record encoder, compiled from its file (the module cache holds wal's once loaded). */
  function kafkajsRecord(): Encode {
    const original = new Module(path) as Module & { _compile(source: string, filename: string): void; paths: string[] }
    original.filename = path
    original.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(dirname(path))
    original._compile(readFileSync(path, 'utf8'), path)
    return original.exports as Encode
  }

  it('are the bytes kafkajs writes: keys, values, headers (repeated, binary, non-ASCII), deltas small and large', async () => {
    await loadKafkajs()
    const wal = require(path) as Encode
    const kafkajs = kafkajsRecord()
    expect(wal).not.toBe(kafkajs)
    const cases = [
      { key: 'k', value: '{"a":1}' },
      { key: null, value: null, headers: {} },
      { key: Buffer.from([0, 255]), value: Buffer.alloc(100_000, 7), offsetDelta: 70_000, timestampDelta: 2 ** 40 },
      { key: 'user-1', value: 'x'.repeat(200), offsetDelta: 3, timestampDelta: '12', headers: { 'wal-id': '01JABCDEFGHJKMNPQRSTVWXYZ0', 'wal-created-at': '2026-12-05T13:30:01.123456Z' } },
      { key: 'ключ', value: '値', timestampDelta: -3, headers: { 'trace-ключ': 'значение', empty: '', bytes: Buffer.from([1, 0, 2]), many: ['1', Buffer.from('two'), 'три'] } },
      { key: 'k', value: 'v', headers: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`h${i}`, 'v'.repeat(i)])) },
      ...[0x3fffffff, 0x40000000, -0x40000000, -0x40000001, 63, 64, -64, -65, 8191, 8192].map((timestampDelta, i) => ({ key: `k${i}`, value: 'v', timestampDelta, offsetDelta: 2 ** 20 + i })),
    ]
    for (const record of cases) expect(wal(record).buffer).toEqual(kafkajs(record).buffer)
  })
})

describe('the one classifier of Kafka failures', () => {
  const protocol = (type: string, retriable: boolean) => Object.assign(new Error(type), { name: 'KafkaJSProtocolError', type, retriable })
  const wrapped = (cause: Error) => Object.assign(new Error('retries exceeded'), { name: 'KafkaJSNumberOfRetriesExceeded', originalError: cause })
  const cluster = { name: 'main', brokers: ['b:9092'], ssl: false } as never

  it('tells a refused record, a broker state that passes and an outage apart, also when retries wrapped them', () => {
    expect(kafkaFault(protocol('MESSAGE_TOO_LARGE', false))).toBe('record')
    expect(kafkaFault(wrapped(protocol('NOT_LEADER_FOR_PARTITION', true)))).toBe('transient')
    expect(kafkaFault(protocol('LEADER_NOT_AVAILABLE', true))).toBe('transient')
    expect(kafkaFault(protocol('COORDINATOR_LOAD_IN_PROGRESS', true))).toBe('transient')
    expect(kafkaFault(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9092'), { name: 'KafkaJSConnectionError' }))).toBe('unreachable')
    expect(kafkaFault(Object.assign(new Error('SASL SCRAM-SHA-256 authentication failed'), { name: 'KafkaJSSASLAuthenticationError' }))).toBe('auth')
    expect(kafkaFault(protocol('TOPIC_AUTHORIZATION_FAILED', false))).toBe('other')
  })

  it('words them for the user: a refused record is exit 4 with the way to raise the limit, a passing state exit 5 with a hint', () => {
    const tooLarge = describeKafkaError(cluster, protocol('MESSAGE_TOO_LARGE', false), { topic: 'orders' })
    expect(tooLarge).toMatchObject({ exitCode: 4, code: 'WAL_RECORD_TOO_LARGE' })
    expect(tooLarge.suggestions[0]).toContain('--entity-name orders --add-config max.message.bytes=')
    const election = describeKafkaError(cluster, protocol('NOT_LEADER_FOR_PARTITION', true))
    expect(election).toMatchObject({ exitCode: 5, code: 'WAL_KAFKA_NOT_LEADER_FOR_PARTITION' })
    expect(election.suggestions[0]).toMatch(/electing partition leaders.*run the command again/)
  })

  it('waits out a passing state for a bounded time, and gives up on anything else at once', async () => {
    let calls = 0
    expect(await riding(async () => (++calls < 3 ? Promise.reject(protocol('LEADER_NOT_AVAILABLE', true)) : 'ok'), { waitMs: 5000 })).toBe('ok')
    expect(calls).toBe(3)
    calls = 0
    await expect(riding(async () => (calls++, Promise.reject(protocol('MESSAGE_TOO_LARGE', false))))).rejects.toThrow('MESSAGE_TOO_LARGE')
    expect(calls).toBe(1)
    calls = 0
    await expect(riding(async () => (calls++, Promise.reject(protocol('LEADER_NOT_AVAILABLE', true))), { waitMs: 300 })).rejects.toThrow('LEADER_NOT_AVAILABLE')
    expect(calls).toBeGreaterThan(1)
  })
})
