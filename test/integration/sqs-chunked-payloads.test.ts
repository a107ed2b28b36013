// Payloads above SQS's 256 KiB message limit (ElasticMQ): kept in the namespace's state store as
// chunks with a SHA-256, a reference enqueued, and every reader (tail, consume, dlq) sees them whole;
// a chunk missing or damaged makes the message poison.
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { cassandraClient, createKeyspace, dropKeyspace } from '../helpers/cassandra.js'
import { deleteQueues, queueUrl, sqsNamespace, testSqs, writeSqsConfig } from '../helpers/sqs-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const prefixes: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  wal.cleanup()
  await deleteQueues(prefixes.splice(0))
})

async function namespace(): Promise<string> {
  const queue = await sqsNamespace(wal, { settings: { maxPayloadBytes: 64 * 1024 * 1024, visibilityTimeoutSeconds: 30 } })
  prefixes.push(queue)
  return queue
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

async function produceFile(key: string, payload: string): Promise<void> {
  writeFileSync(join(wal.dir, `${key}.json`), payload)
  const produced = await wal.run(['produce', '-n', 'orders', '-k', key, '--payload-file', join(wal.dir, `${key}.json`), '--json'])
  expect(produced.code, produced.stderr).toBe(0)
  expect(JSON.parse(produced.stdout)).toMatchObject({ durable: true })
}

function store(): DatabaseSync {
  return new DatabaseSync(join(wal.stateDir, 'sqs-state', 'orders.sqlite'), { timeout: 5000 })
}

describe('payloads larger than an SQS message (256 KiB with its attributes)', () => {
  it('keeps a 10 MiB and a 50 MiB payload in the state store as chunks, and tail and consume see them whole and byte-exact', async () => {
    const queue = await namespace()
    const payloads = { ten: bigPut(1, 10 * 1024 * 1024), fifty: bigPut(4, 50 * 1024 * 1024), edge: bigPut(2, 200 * 1024), small: '{"op":"put","table":"blobs","key":{"id":3},"item":{"id":3}}' }
    for (const [key, payload] of Object.entries(payloads)) await produceFile(key, payload)
    // In the queue, every message fits: the large one is a reference.
    const raw = await testSqs.send(new ReceiveMessageCommand({ QueueUrl: await queueUrl(queue), MaxNumberOfMessages: 10, VisibilityTimeout: 0, MessageAttributeNames: ['All'] }))
    expect(raw.Messages).toHaveLength(4)
    for (const m of raw.Messages!) expect(Buffer.byteLength(m.Body!)).toBeLessThanOrEqual(256 * 1024)
    const db = store()
    expect((db.prepare('SELECT chunks, bytes FROM payloads').all() as Array<{ chunks: number; bytes: number }>).map((r) => r.bytes).sort((a, b) => a - b)).toEqual([payloads.ten.length, payloads.fifty.length])
    db.close()

    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(tail.code, tail.stderr).toBe(0)
    expect(tail.stdout.trim().split('\n')).toHaveLength(4)
    const texts = payloadTexts(tail.stdout)
    for (const [key, payload] of Object.entries(payloads)) expect(texts.get(key) === payload, key).toBe(true)
    // The reference headers are the reader's business, not the mutation's.
    for (const line of jsonLines<{ headers?: Record<string, string> }>(tail.stdout)) expect(Object.keys(line.headers ?? {})).toEqual([])

    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(consumed.code, consumed.stderr).toBe(0)
    const blobs = kvItems(wal.stateDir, 'orders').map((i) => (JSON.parse(i.item!) as { blob?: string }).blob ?? '')
    expect(blobs.map((b) => b.length).sort((a, b) => a - b)).toEqual([0, 200 * 1024, 10 * 1024 * 1024, 50 * 1024 * 1024])
    expect(blobs.includes((JSON.parse(payloads.ten) as { item: { blob: string } }).item.blob)).toBe(true)
  }, 120_000)

  it('dead-letters a large payload that fails at its target whole, and replays it whole', async () => {
    await namespace()
    const payload = `{"blob":"${randomBytes(1024 * 1024).toString('hex')}"}`
    await produceFile('bad', payload)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(8)
    const exported = await wal.run(['dlq', 'export', '-n', 'orders'])
    expect(exported.code, exported.stderr).toBe(0)
    const lines = exported.stdout.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(payloadTexts(lines[0]!).get('bad') === payload).toBe(true)
    expect(JSON.parse(lines[0]!).failures[0]).toMatchObject({ errorClass: 'fatal' })
    expect((await wal.run(['dlq', 'replay', '-n', 'orders'])).code).toBe(0)
    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(payloadTexts(tail.stdout).get('bad') === payload).toBe(true)
  }, 120_000)

  it('dead-letters a payload whose chunk was deleted, or damaged, as poison and applies the rest', async () => {
    await namespace()
    await produceFile('gone', bigPut(1, 3 * 1024 * 1024))
    await produceFile('damaged', bigPut(2, 2 * 1024 * 1024))
    await produceFile('fine', '{"op":"put","table":"t","key":{"id":9},"item":{"id":9}}')
    const db = store()
    const shas = db.prepare('SELECT sha, bytes FROM payloads ORDER BY bytes DESC').all() as Array<{ sha: string }>
    db.prepare('DELETE FROM payload_chunks WHERE sha = ? AND idx = 1').run(shas[0]!.sha)
    db.prepare("UPDATE payload_chunks SET value = zeroblob(10) WHERE sha = ? AND idx = 0").run(shas[1]!.sha)
    db.close()

    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    const lines = jsonLines<{ key: string; error?: string }>(tail.stdout)
    const byKey = new Map(lines.map((l) => [l.key, l]))
    expect(byKey.get('gone')!.error).toMatch(/chunk 1 of \d+ is missing from the state store/)
    expect(byKey.get('damaged')!.error).toMatch(/SHA-256/)
    expect(byKey.get('fine')!.error).toBeUndefined()

    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(consumed.code).toBe(8)
    expect(kvItems(wal.stateDir, 'orders').map((i) => JSON.parse(i.pk)[0][1])).toEqual([9])
    const entries = JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout).entries as Array<{ key: string; errorClass: string }>
    expect(entries.map((e) => [e.key, e.errorClass]).sort()).toEqual([
      ['damaged', 'poison'],
      ['gone', 'poison'],
    ])
  }, 120_000)

  it('hands the Cassandra target a 10 MiB value put back together', async () => {
    const client = cassandraClient()
    await client.connect()
    const keyspace = await createKeyspace(client, 'sqschunk')
    try {
      await client.execute(`CREATE TABLE ${keyspace}.blobs (id int PRIMARY KEY, blob text)`)
      const queue = `wal-${randomBytes(5).toString('hex')}`
      prefixes.push(queue)
      writeSqsConfig(wal, queue, { settings: { maxPayloadBytes: 64 * 1024 * 1024 }, targets: { db: { type: 'cassandra', cluster: 'main', keyspace } } })
      const path = join(wal.cwd, '.walrc.json')
      const config = JSON.parse(readFileSync(path, 'utf8')) as { clusters: Record<string, unknown> }
      config.clusters.cassandra = { main: { contactPoints: endpoints.cassandra.contactPoints, localDataCenter: endpoints.cassandra.localDataCenter } }
      writeFileSync(path, JSON.stringify(config))
      const init = await wal.run(['ns', 'init', 'orders'])
      expect(init.code, init.stderr).toBe(0)
      const payload = bigPut(1, 10 * 1024 * 1024)
      await produceFile('ten', payload)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
      expect(consumed.code, consumed.stderr).toBe(0)
      const row = (await client.execute(`SELECT blob FROM ${keyspace}.blobs WHERE id = 1`)).first()
      expect(row?.get('blob') === (JSON.parse(payload) as { item: { blob: string } }).item.blob).toBe(true)
    } finally {
      await dropKeyspace(client, keyspace)
      await client.shutdown()
    }
  }, 180_000)
})
