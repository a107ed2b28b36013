import { readFileSync } from 'node:fs'
import { createRequire, Module } from 'node:module'
import { dirname } from 'node:path'
import { describe, expect, it, vi } from 'vitest'

import { gunzipSync } from 'node:zlib'

import { describeKafkaError, kafkaFault, loadKafkajs, riding } from '../../src/lib/kafka/client.js'
import { crc32c } from '../../src/lib/kafka/record-encoding.js'

/** A gzipped batch's records, uncompressed (gzip headers hold a time, so compare what they carry). */
const gunzipRecords = (batch: Buffer): Buffer => gunzipSync(batch.subarray(61))

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
  type Batch = (batch: object) => Promise<{ buffer: Buffer }>
  const require = createRequire(import.meta.url)
  const path = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/index.js')
  const batchPath = require.resolve('kafkajs/src/protocol/recordBatch/v0/index.js')
  /** A module of kafkajs as its file has it, compiled from the file (the module cache holds wal's once loaded). */
  function kafkajsOwn<T>(file: string): T {
    const original = new Module(file) as Module & { _compile(source: string, filename: string): void; paths: string[] }
    original.filename = file
    original.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(dirname(file))
    original._compile(readFileSync(file, 'utf8'), file)
    return original.exports as T
  }
  const kafkajsRecord = (): Encode => kafkajsOwn<Encode>(path)

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
      { key: '\ud800x\u001b[31m', value: `${'é'.repeat(70)}\udfff`, headers: { ['__proto__']: 'p', ['\u0000\n']: '\ud83d\ude00'.repeat(40), long: 'x'.repeat(65) } },
      ...[0x3fffffff, 0x40000000, -0x40000000, -0x40000001, 63, 64, -64, -65, 8191, 8192].map((timestampDelta, i) => ({ key: `k${i}`, value: 'v', timestampDelta, offsetDelta: 2 ** 20 + i })),
    ]
    for (const record of cases) expect(wal(record).buffer).toEqual(kafkajs(record).buffer)
  })

  it('are batched as kafkajs batches them: header, CRC-32C and records, uncompressed and gzipped, idempotent and transactional', async () => {
    await loadKafkajs()
    const walRecord = require(path) as Encode
    const walBatch = (require(batchPath) as { RecordBatch: Batch }).RecordBatch
    const kafkajsBatch = kafkajsOwn<{ RecordBatch: Batch }>(batchPath).RecordBatch
    expect(walBatch).not.toBe(kafkajsBatch)
    const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): unknown }
    const records = Array.from({ length: 300 }, (_, i) => ({
      key: i % 7 === 0 ? null : `user-${i}`,
      value: i % 11 === 0 ? Buffer.from([i & 0xff, 0, 255]) : `{"n":${i},"text":"${'é'.repeat(i % 5)}${'x'.repeat(i)}"}`,
      offsetDelta: i,
      timestampDelta: i * 3,
      headers: i % 3 === 0 ? {} : { 'wal-id': `01JABCDEFGHJKMNPQRSTVW${String(i).padStart(4, '0')}`, 'wal-created-at': '2026-12-05T13:30:01.123456Z', many: i % 2 ? ['a', 'б'] : 'c' },
    }))
    const base = { firstTimestamp: '1764941401123', maxTimestamp: '1764941402000', lastOffsetDelta: records.length - 1 }
    const variants = [
      {},
      { producerId: Long.fromValue(4711), producerEpoch: 3, firstSequence: 12_345 },
      { producerId: Long.fromValue('9007199254740993'), producerEpoch: 1, firstSequence: 7, transactional: true, partitionLeaderEpoch: 2 },
      { compression: 1 },
    ]
    const kafkajs = kafkajsRecord()
    for (const variant of variants) {
      for (const list of [records, records.slice(0, 1), []]) {
        const ours = await walBatch({ ...base, ...variant, records: list.map((r) => walRecord(r)) })
        const theirs = await kafkajsBatch({ ...base, ...variant, records: list.map((r) => kafkajs(r)) })
        if (variant.compression === undefined) expect(ours.buffer).toEqual(theirs.buffer)
        else expect(gunzipRecords(ours.buffer)).toEqual(gunzipRecords(theirs.buffer))
      }
    }
  })

  it('go out in produce requests with the bytes kafkajs frames: topics, partitions, sequences, timestamps given or not, transactional or not', async () => {
    await loadKafkajs()
    const requestPath = require.resolve('kafkajs/src/protocol/request.js')
    const producePath = require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js')
    type Produce = (args: object) => { apiKey: number; apiVersion: number; encode(): Promise<unknown> }
    type Frame = (args: object) => Promise<{ buffer: Buffer }>
    const walFrame = require(requestPath) as Frame
    const walProduce = require(producePath) as Produce
    const kafkajsFrame = kafkajsOwn<Frame>(requestPath)
    const kafkajsProduce = kafkajsOwn<Produce>(producePath)
    expect(walProduce).not.toBe(kafkajsProduce)
    const v7 = require('kafkajs/src/protocol/requests/produce/v7/request.js') as Produce
    const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): unknown }
    const messages = (n: number, timestamps: (i: number) => unknown) =>
      Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: `{"i":${i}}`, timestamp: timestamps(i), headers: i % 2 ? { 'wal-id': `id-${i}` } : undefined }))
    const topicData = [
      {
        topic: 'orders',
        partitions: [
          { partition: 0, firstSequence: 0, messages: messages(50, (i) => String(1764941401123 + ((i * 37) % 50))) },
          { partition: 3, firstSequence: 1000, messages: messages(7, (i) => (i === 2 ? undefined : 1764941401000 + (i % 3))) },
        ],
      },
      { topic: 'заказы', partitions: [{ partition: 1, firstSequence: 5, messages: messages(3, (i) => ['999', '1000', '1764941401000'][i]) }] },
    ]
    const cases = [
      { acks: -1, timeout: 30_000, topicData, producerId: Long.fromValue(77), producerEpoch: 2 },
      { acks: 1, timeout: 500, topicData: topicData.slice(1), transactionalId: 'wal-txn-1', producerId: Long.fromValue(78), producerEpoch: 0 },
      { acks: -1, timeout: 30_000, topicData: [] },
    ]
    for (const args of cases) {
      for (const clientId of ['wal', null]) {
        // The same clock for both: a batch without timestamps is stamped with Date.now().
        const now = vi.spyOn(Date, 'now').mockReturnValue(1764941409999)
        try {
          const ours = await walFrame({ correlationId: 12, clientId, request: walProduce(args) })
          const theirs = await kafkajsFrame({ correlationId: 12, clientId, request: kafkajsProduce(args) })
          expect(ours.buffer).toEqual(theirs.buffer)
        } finally {
          now.mockRestore()
        }
      }
    }
    const request = v7(cases[0]!)
    expect([request.apiKey, request.apiVersion]).toEqual([0, 7])
  })

  it('checksum a batch with the CRC-32C kafkajs computes, at every length and alignment', async () => {
    const kafkajsCrc = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 167 + 13) & 0xff))
    for (let start = 0; start < 9; start++) for (const end of [start, start + 1, start + 7, start + 8, start + 9, 64, 299, 300]) expect(crc32c(bytes, start, end)).toBe(kafkajsCrc(bytes.subarray(start, end)))
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283)
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
