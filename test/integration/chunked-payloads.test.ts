import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { deleteTopics, kafkaNamespace, testKafka } from '../helpers/kafka-namespace.js'
import { kvItems } from '../helpers/state.js'
import { makeSandbox, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

async function namespace(partitions: number): Promise<string> {
  const topic = await kafkaNamespace(wal, { partitions, settings: { maxPayloadBytes: 64 * 1024 * 1024 } })
  topics.push(topic)
  return topic
}

/** Records in a topic, chunks counted one by one. */
async function recordCount(topic: string): Promise<number> {
  const admin = testKafka.admin()
  await admin.connect()
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high) - Number(p.low), 0)
  } finally {
    await admin.disconnect()
  }
}

/** A compact JSON put whose item holds `bytes` of text (random, so nothing compresses it away). */
function bigPut(id: number, bytes: number): string {
  return `{"op":"put","table":"blobs","key":{"id":${id}},"item":{"id":${id},"blob":"${randomBytes(Math.ceil(bytes / 2)).toString('hex').slice(0, bytes)}"}}`
}

/** The payload text of each envelope line of `tail --json`, cut out of the line as printed (not re-serialized). */
function payloadTexts(stdout: string): Map<string, string> {
  const found = new Map<string, string>()
  for (const line of stdout.split('\n')) {
    if (line === '') continue
    const key = (JSON.parse(line) as { key: string }).key
    const start = line.indexOf(',"payload":') + ',"payload":'.length
    const end = line.indexOf(',"payloadEncoding":', start)
    found.set(key, line.slice(start, end))
  }
  return found
}

describe('payloads larger than a Kafka record (max.message.bytes, 1 MiB by default)', () => {
  it('writes a 10 MiB and a 50 MiB payload as chunks, and tail and consume see them whole and byte-exact', async () => {
    const topic = await namespace(2)
    const payloads = { ten: bigPut(1, 10 * 1024 * 1024), fifty: bigPut(2, 50 * 1024 * 1024), small: '{"op":"put","table":"blobs","key":{"id":3},"item":{"id":3}}' }
    for (const [key, payload] of Object.entries(payloads)) {
      writeFileSync(join(wal.dir, `${key}.json`), payload)
      const produced = await wal.run(['produce', '-n', 'orders', '-k', key, '--payload-file', join(wal.dir, `${key}.json`), '--json'])
      expect(produced.code, produced.stderr).toBe(0)
      expect(JSON.parse(produced.stdout)).toMatchObject({ durable: true })
    }
    // Many records in the topic (no one of them above the limit), three mutations to readers.
    expect(await recordCount(topic)).toBeGreaterThan(60)
    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(tail.code, tail.stderr).toBe(0)
    expect(tail.stdout.trim().split('\n')).toHaveLength(3)
    const texts = payloadTexts(tail.stdout)
    for (const [key, payload] of Object.entries(payloads)) expect(texts.get(key) === payload, key).toBe(true)

    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(consumed.code, consumed.stderr).toBe(0)
    const items = kvItems(wal.stateDir, 'orders')
    expect(items.map((i) => (JSON.parse(i.item!) as { blob?: string }).blob?.length ?? 0).sort((a, b) => a - b)).toEqual([0, 10 * 1024 * 1024, 50 * 1024 * 1024])
  })

  it('dead-letters a large payload that fails at its target whole, and replays it whole', async () => {
    await namespace(1)
    // Valid JSON, not an operation: the kv target refuses it (fatal).
    const payload = `{"blob":"${randomBytes(2 * 1024 * 1024).toString('hex')}"}`
    writeFileSync(join(wal.dir, 'bad.json'), payload)
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'bad', '--payload-file', join(wal.dir, 'bad.json')])).code).toBe(0)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(8)
    const exported = await wal.run(['dlq', 'export', '-n', 'orders'])
    expect(exported.code).toBe(0)
    const lines = exported.stdout.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(payloadTexts(lines[0]!).get('bad') === payload).toBe(true)
    expect(JSON.parse(lines[0]!).failures[0]).toMatchObject({ errorClass: 'fatal' })
    expect((await wal.run(['dlq', 'replay', '-n', 'orders'])).code).toBe(0)
    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    const replayed = tail.stdout.trim().split('\n')
    expect(replayed).toHaveLength(2)
    expect(payloadTexts(replayed[1]!).get('bad') === payload).toBe(true)
  })

  it('dead-letters a payload whose first chunk was deleted, or whose chunks do not match their checksum, as poison', async () => {
    const topic = await namespace(1)
    writeFileSync(join(wal.dir, 'big.json'), bigPut(1, 3 * 1024 * 1024))
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'big', '--payload-file', join(wal.dir, 'big.json')])).code).toBe(0)
    // The first chunk is deleted (as retention would), and a payload is written by hand whose chunks were damaged.
    const admin = testKafka.admin()
    await admin.connect()
    await admin.fetchTopicMetadata({ topics: [topic] })
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '1' }] })
    await admin.disconnect()
    const producer = testKafka.producer()
    await producer.connect()
    const headers = (i: number): Record<string, string> => ({ 'wal-id': '01M92W5G4JNSAE6DPY4D89CSKZ', 'wal-chunk': `${i}/2`, 'wal-chunk-sha256': '0'.repeat(64) })
    await producer.send({ topic, messages: [0, 1].map((i) => ({ key: 'damaged', value: i === 0 ? '{"op":"put",' : '"table":"t"}', headers: headers(i), partition: 0 })) })
    await producer.send({ topic, messages: [{ key: 'after', value: '{"op":"put","table":"t","key":{"id":9},"item":{"id":9}}', headers: { 'wal-id': '01M92W5G4JNSAE6DPY4D89CSM0' }, partition: 0 }] })
    await producer.disconnect()

    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    const lines = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as { key: string; error?: string })
    expect(lines.map((l) => l.key)).toEqual(['big', 'damaged', 'after'])
    expect(lines[0]!.error).toMatch(/chunk 0 of \d+ is missing/)
    expect(lines[1]!.error).toMatch(/SHA-256/)
    expect(lines[2]!.error).toBeUndefined()

    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(consumed.code).toBe(8)
    const dlq = JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ key: string; errorClass: string; code: string }> }
    expect(dlq.entries.map((e) => [e.key, e.errorClass, e.code]).sort()).toEqual([
      ['big', 'poison', 'WAL_RECORD_POISON'],
      ['damaged', 'poison', 'WAL_RECORD_POISON'],
    ])
    // Never applied; the record after them is.
    expect(kvItems(wal.stateDir, 'orders').map((i) => i.tbl)).toEqual(['t'])
  })
})
