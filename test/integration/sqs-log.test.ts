// An SQS namespace against ElasticMQ: ns init, produce, tail (a peek), consume, FIFO order and dedup,
// and interop with a plain @aws-sdk/client-sqs client both ways.
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, request, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { startTargetServer, type TargetServer } from '../helpers/http-target-server.js'
import { deleteQueues, queueUrl, sqsNamespace, testSqs, writeSqsConfig } from '../helpers/sqs-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, type Envelope, type Sandbox } from '../helpers/wal.js'

const execFileAsync = promisify(execFile)
let wal: Sandbox
let server: TargetServer
const prefixes: string[] = []
beforeEach(async () => {
  wal = makeSandbox()
  server = await startTargetServer()
})
afterEach(async () => {
  await server.close()
  wal.cleanup()
  await deleteQueues(prefixes.splice(0))
})

async function namespace(options: Parameters<typeof sqsNamespace>[1] = {}): Promise<string> {
  const queue = await sqsNamespace(wal, options)
  prefixes.push(queue)
  return queue
}

interface SqsAck {
  line: number
  id: string
  partition: number
  queue: string
  messageId: string
  durable: boolean
}

interface Summary {
  targets: Array<{ target: string; applied: number; retried: number; scheduled: number; deadLettered: number; lag: number }>
}

const put = (id: string | number) => ({ op: 'put', table: 't', key: { id }, item: { id } })

async function visible(name: string): Promise<number> {
  const { Attributes } = await testSqs.send(new GetQueueAttributesCommand({ QueueUrl: await queueUrl(name), AttributeNames: ['ApproximateNumberOfMessages'] }))
  return Number(Attributes?.ApproximateNumberOfMessages)
}

describe('an SQS namespace', () => {
  it('ns init creates a queue per shard with a redrive policy to one DLQ, and reports them as existing when run again', async () => {
    const queue = await namespace({ shards: 3, settings: { maxReceiveCount: 7 } })
    const again = JSON.parse((await wal.run(['ns', 'init', 'orders', '--json'])).stdout) as { parts: Array<{ role: string; name: string; status: string; warning?: string }> }
    expect(again.parts.map((p) => [p.role, p.name, p.status, p.warning])).toEqual([
      ['dlq', `${queue}-dlq`, 'exists', undefined],
      ['log shard 0', `${queue}-0`, 'exists', undefined],
      ['log shard 1', `${queue}-1`, 'exists', undefined],
      ['log shard 2', `${queue}-2`, 'exists', undefined],
    ])
    const { Attributes } = await testSqs.send(new GetQueueAttributesCommand({ QueueUrl: await queueUrl(`${queue}-1`), AttributeNames: ['RedrivePolicy'] }))
    const policy = JSON.parse(Attributes!.RedrivePolicy!) as { deadLetterTargetArn: string; maxReceiveCount: number | string }
    expect(policy.deadLetterTargetArn).toMatch(new RegExp(`:${queue}-dlq$`))
    expect(Number(policy.maxReceiveCount)).toBe(7)
  })

  it('produce acks each line with its queue and MessageId; tail peeks without consuming; consume applies and deletes', async () => {
    const queue = await namespace({ shards: 3 })
    const input = ndjson(Array.from({ length: 25 }, (_, i) => ({ key: `k${i}`, payload: put(i) })))
    const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input })
    expect(produced.code).toBe(0)
    const acks = jsonLines<SqsAck>(produced.stdout)
    expect(acks).toHaveLength(25)
    expect(acks.every((a) => a.durable && a.queue === `${queue}-${a.partition}` && /^[0-9a-f-]{36}$/.test(a.messageId))).toBe(true)
    expect(new Set(acks.map((a) => a.partition)).size).toBeGreaterThan(1)

    for (let i = 0; i < 2; i++) {
      const tailed = await wal.run(['tail', '-n', 'orders', '--json'])
      expect(tailed.code).toBe(0)
      expect(jsonLines<Envelope>(tailed.stdout).map((e) => e.key).sort()).toEqual(acks.map((_, n) => `k${n}`).sort())
    }
    const one = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json', '-k', 'k7'])).stdout)
    expect(one).toMatchObject([{ key: 'k7', payload: put(7), id: acks[7]!.id }])
    expect((await wal.run(['tail', '-n', 'orders', '--from', '3'])).code).toBe(2)

    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code).toBe(0)
    expect((JSON.parse(consumed.stdout) as Summary).targets[0]).toMatchObject({ target: 'kv', applied: 25, deadLettered: 0, lag: 0 })
    expect(kvItems(wal.stateDir, 'orders')).toHaveLength(25)
    for (let shard = 0; shard < 3; shard++) expect(await visible(`${queue}-${shard}`)).toBe(0)
    expect(jsonLines((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)).toEqual([])
  })

  it('--shard I/N consumes only the queues i with i % N == I', async () => {
    const queue = await namespace({ shards: 2 })
    const acks = jsonLines<SqsAck>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(Array.from({ length: 12 }, (_, i) => ({ key: `k${i}`, payload: put(i) }))) })).stdout)
    const onShard1 = acks.filter((a) => a.partition === 1).length
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--shard', '1/2', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets[0]).toMatchObject({ applied: onShard1 })
    expect(await visible(`${queue}-1`)).toBe(0)
    expect(await visible(`${queue}-0`)).toBe(12 - onShard1)
  })

  it('writes messages any SQS client can read: the envelope in the body, wal-id and the user\'s headers in the attributes', async () => {
    const queue = await namespace()
    const ack = jsonLines<SqsAck>((await wal.run(['produce', '-n', 'orders', '-k', 'user-42', '-H', 'source=crm', '-p', '{"name":"Ada"}', '--json'])).stdout)[0]!
    const { Messages = [] } = await testSqs.send(new ReceiveMessageCommand({ QueueUrl: await queueUrl(queue), MessageAttributeNames: ['All'], WaitTimeSeconds: 1 }))
    expect(Messages).toHaveLength(1)
    expect(Messages[0]!.MessageId).toBe(ack.messageId)
    expect(Messages[0]!.MessageAttributes?.['wal-id']?.StringValue).toBe(ack.id)
    expect(Messages[0]!.MessageAttributes?.source).toMatchObject({ DataType: 'String', StringValue: 'crm' })
    expect(JSON.parse(Messages[0]!.Body!)).toMatchObject({ v: 1, id: ack.id, key: 'user-42', payload: { name: 'Ada' }, headers: { source: 'crm' } })
  })

  it('interoperates with the AWS CLI both ways', async () => {
    const queue = await namespace()
    const url = await queueUrl(queue)
    const env = { ...process.env, AWS_ACCESS_KEY_ID: 'wal', AWS_SECRET_ACCESS_KEY: 'wal', AWS_DEFAULT_REGION: 'us-east-1' }
    const aws = async (args: string[]): Promise<string> => {
      const { stdout } = await execFileAsync('aws', ['--endpoint-url', endpoints.sqs.endpoint, 'sqs', ...args], { env }).catch((error: Error) => {
        throw new Error(`the AWS CLI (the independent SQS client of this test) failed or is missing; install it (Debian: apt-get install awscli): ${error.message}`)
      })
      return stdout
    }
    await aws(['send-message', '--queue-url', url, '--message-body', '{"from":"aws-cli"}'])
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tailed).toMatchObject([{ payload: { from: 'aws-cli' }, payloadEncoding: 'json' }])
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    const ack = jsonLines<SqsAck>((await wal.run(['produce', '-n', 'orders', '-k', 'k1', '-p', '{"from":"wal"}', '--json'])).stdout)[0]!
    const received = JSON.parse(await aws(['receive-message', '--queue-url', url, '--wait-time-seconds', '1', '--message-attribute-names', 'All'])) as {
      Messages: Array<{ MessageId: string; Body: string; MessageAttributes: Record<string, { StringValue: string }> }>
    }
    expect(received.Messages[0]!.MessageId).toBe(ack.messageId)
    expect(JSON.parse(received.Messages[0]!.Body)).toMatchObject({ id: ack.id, key: 'k1', payload: { from: 'wal' } })
    expect(received.Messages[0]!.MessageAttributes['wal-id']!.StringValue).toBe(ack.id)
  })

  it('wraps messages another client sent in an envelope instead of rejecting them, and applies them', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    const queue = await namespace({ targets: { out: { type: 'file', path: outPath } } })
    const url = await queueUrl(queue)
    await testSqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'plain text, not JSON', MessageAttributes: { origin: { DataType: 'String', StringValue: 'legacy' } } }))
    await testSqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: '{"amount":12}' }))
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).sort((a, b) => a.payloadEncoding.localeCompare(b.payloadEncoding))
    expect(tailed).toHaveLength(2)
    expect(tailed[0]).toMatchObject({ payloadEncoding: 'base64', payload: Buffer.from('plain text, not JSON').toString('base64'), headers: { origin: 'legacy' } })
    expect(tailed[1]).toMatchObject({ payloadEncoding: 'json', payload: { amount: 12 } })
    // The same id on every read: a wrapped message can be explained, replayed and deduplicated.
    const again = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(again.map((e) => e.id).sort()).toEqual(tailed.map((e) => e.id).sort())
    const consumed = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(consumed.targets[0]).toMatchObject({ applied: 2, deadLettered: 0 })
    expect(jsonLines<Envelope>(readFileSync(outPath, 'utf8')).map((e) => e.payloadEncoding).sort()).toEqual(['base64', 'json'])
  })

  it('on a FIFO queue keeps a key in order while one of its messages is retried, and drops a repeated idempotency key', async () => {
    await namespace({ fifo: true, targets: { api: { type: 'http', url: server.url, timeoutMs: 5000 } }, retry: { initialBackoffMs: 500, maxAttempts: 5, jitter: 0 } })
    server.failFirst('k', 2)
    const input = ndjson([1, 2, 3].map((n) => ({ key: 'k', payload: { n } })).concat([{ key: 'other', payload: { n: 0 } }]))
    expect((await wal.run(['produce', '-n', 'orders'], { input })).code).toBe(0)
    const first = await wal.run(['produce', '-n', 'orders', '-k', 'once', '--idempotency-key', 'pay-1', '-p', '1'])
    const repeat = await wal.run(['produce', '-n', 'orders', '-k', 'once', '--idempotency-key', 'pay-1', '-p', '1'])
    expect([first.code, repeat.code]).toEqual([0, 0])
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets[0]).toMatchObject({ applied: 5, retried: 2, deadLettered: 0 })
    const applied = server.received.filter((r) => r.status === 200)
    expect(applied.filter((r) => r.key === 'k').map((r) => (JSON.parse(r.body) as { n: number }).n)).toEqual([1, 2, 3])
    expect(applied.filter((r) => r.key === 'once')).toHaveLength(1)
    // The attempt a target sees is the message's receive count.
    expect(server.received.filter((r) => r.key === 'k').slice(0, 3).map((r) => r.attempt)).toEqual([1, 2, 3])
  })

  it('says durable=unknown and exits 6 when SQS stops answering a send; producing again with the same idempotency key writes it once (FIFO)', async () => {
    const queue = await namespace({ fifo: true })
    // An endpoint that answers everything but SendMessageBatch, which it never answers.
    const upstream = new URL(endpoints.sqs.endpoint)
    const hung: ServerResponse[] = []
    const proxy = createServer((req, res) => {
      if (String(req.headers['x-amz-target']).endsWith('SendMessageBatch')) {
        hung.push(res)
        req.resume()
        return
      }
      const forward = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      })
      req.pipe(forward)
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    try {
      writeSqsConfig(wal, queue, { fifo: true, endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, cluster: { requestTimeoutMs: 800 } })
      const stuck = await wal.run(['produce', '-n', 'orders', '-k', 'pay', '--idempotency-key', 'pay-7', '-p', '{"cents":700}'])
      expect(stuck.code).toBe(6)
      expect(stuck.stdout).toMatch(/durable=unknown idempotencyKey=pay-7/)
      expect(stuck.stderr).toMatch(/no answer/)
    } finally {
      for (const res of hung) res.destroy()
      proxy.close()
    }
    writeSqsConfig(wal, queue, { fifo: true })
    for (let i = 0; i < 2; i++) expect((await wal.run(['produce', '-n', 'orders', '-k', 'pay', '--idempotency-key', 'pay-7', '-p', '{"cents":700}'])).code).toBe(0)
    expect(jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).map((e) => e.idempotencyKey)).toEqual(['pay-7'])
  })

  it('a namespace whose queues were not created says so and how to create them (exit 7)', async () => {
    const queue = await namespace()
    await deleteQueues([queue])
    const result = await wal.run(['produce', '-n', 'orders', '-p', '1'])
    expect(result.code).toBe(7)
    expect(result.stderr).toMatch(/does not exist.*\n?.*wal ns init/s)
  })
})
