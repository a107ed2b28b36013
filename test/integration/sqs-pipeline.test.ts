// The pipeline on an SQS namespace against ElasticMQ: dead-lettering with the failure context and replay,
// SQS's own redrive, a 20-minute delay across a consumer restart, an endpoint that goes down, the SQS target.
import { ChangeMessageVisibilityCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs'
import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { startTargetServer, type TargetServer } from '../helpers/http-target-server.js'
import { deleteQueues, queueUrl, sqsNamespace, testSqs, writeSqsConfig } from '../helpers/sqs-namespace.js'
import { deadLetters, kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let server: TargetServer
const prefixes: string[] = []
const proxies: string[] = []
beforeEach(async () => {
  wal = makeSandbox()
  server = await startTargetServer()
})
afterEach(async () => {
  await server.close()
  wal.cleanup()
  await deleteQueues(prefixes.splice(0))
  for (const name of proxies.splice(0)) await fetch(`${endpoints.toxiproxy.api}/proxies/${name}`, { method: 'DELETE' }).catch(() => undefined)
})

async function namespace(options: Parameters<typeof sqsNamespace>[1] = {}): Promise<string> {
  const queue = await sqsNamespace(wal, options)
  prefixes.push(queue)
  return queue
}

interface Summary {
  targets: Array<{ target: string; applied: number; retried: number; scheduled: number; deadLettered: number; circuitOpened: number; lag: number }>
}

interface Listing {
  id: string
  key: string
  target: string
  errorClass: string
  code: string
  message: string
  attempts: number
  envelope: { failures: Array<{ attempt: number; code: string; errorClass: string }> }
}

const put = (id: string | number) => ({ op: 'put', table: 't', key: { id }, item: { id } })

/** A Toxiproxy proxy of this test's own in front of ElasticMQ; returns its URL and a switch. */
async function proxy(): Promise<{ endpoint: string; enable(on: boolean): Promise<void> }> {
  const name = `wal-sqs-${randomBytes(4).toString('hex')}`
  const response = await fetch(`${endpoints.toxiproxy.api}/proxies`, {
    method: 'POST',
    body: JSON.stringify({ name, listen: '127.0.0.1:0', upstream: new URL(endpoints.sqs.endpoint).host, enabled: true }),
  })
  const created = (await response.json()) as { listen: string }
  proxies.push(name)
  return {
    endpoint: `http://${created.listen}`,
    async enable(enabled) {
      await fetch(`${endpoints.toxiproxy.api}/proxies/${name}`, { method: 'POST', body: JSON.stringify({ enabled }) })
    },
  }
}

describe('the pipeline on an SQS namespace', () => {
  it('dead-letters a message failing until its attempts are spent, with its failure context; replay brings it back once', async () => {
    await namespace({ targets: { api: { type: 'http', url: server.url, timeoutMs: 5000 } }, retry: { maxAttempts: 3, initialBackoffMs: 200, jitter: 0 } })
    server.always('bad', 503)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'bad', payload: { n: 1 } }, { key: 'good', payload: { n: 2 } }]) })
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets[0]).toMatchObject({ applied: 1, retried: 2, deadLettered: 1 })
    expect(server.received.filter((r) => r.key === 'bad').map((r) => r.attempt)).toEqual([1, 2, 3])

    const listed = JSON.parse((await wal.run(['dlq', 'show', '-n', 'orders', '1', '--json'])).stdout) as { entries: Listing[] }
    expect(listed.entries).toHaveLength(1)
    expect(listed.entries[0]).toMatchObject({ key: 'bad', target: 'api', errorClass: 'retryable', code: 'HTTP_503', attempts: 3 })
    expect(listed.entries[0]!.envelope.failures.map((f) => [f.attempt, f.code])).toEqual([
      [1, 'HTTP_503'],
      [2, 'HTTP_503'],
      [3, 'HTTP_503'],
    ])
    // Its stable id (the DLQ message's MessageId, shown as ENTRY) finds it in any later command, as its number does now.
    const entryId = (listed.entries[0] as unknown as { entry: string }).entry
    expect(entryId).not.toMatch(/^\d+$/)
    expect((await wal.run(['dlq', 'ls', '-n', 'orders'])).stdout).toMatch(new RegExp(`^ENTRY +SEQ[\\s\\S]*\\n${entryId} +1 `))
    const byId = JSON.parse((await wal.run(['dlq', 'show', '-n', 'orders', entryId, '--json'])).stdout) as { entries: Array<{ entry: string; key: string }> }
    expect(byId.entries).toEqual([expect.objectContaining({ entry: entryId, key: 'bad' })])
    // Reading the DLQ does not consume it.
    const stats = JSON.parse((await wal.run(['dlq', 'stats', '-n', 'orders', '--json'])).stdout) as { total: number; groups: Array<{ code: string; count: number }> }
    expect(stats).toMatchObject({ total: 1, groups: [{ code: 'HTTP_503', count: 1 }] })

    server.always('bad', 200)
    const dry = await wal.run(['dlq', 'replay', '-n', 'orders', '--dry-run', '--json'])
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, replayed: 1 })
    const replay = await wal.run(['dlq', 'replay', '-n', 'orders', '--json'])
    expect(JSON.parse(replay.stdout)).toMatchObject({ replayed: 1, parked: 0 })
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
    // Running the same replay again finds nothing to replay.
    expect(JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--json'])).stdout)).toMatchObject({ replayed: 0 })
    const after = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(after.targets[0]).toMatchObject({ applied: 1, deadLettered: 0 })
    expect(server.received.filter((r) => r.key === 'bad' && r.status === 200)).toHaveLength(1)
    expect((await wal.run(['dlq', 'audit', '-n', 'orders'])).stdout).toMatch(/replay/)
  })

  it('parks an entry the loop guard stops (re-sent with a mark, since SQS cannot change a message), and replays the rest by filter', async () => {
    await namespace()
    // Not operations: the kv target refuses them as fatal, straight to the DLQ.
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'loop', payload: { n: 1 } }, { key: 'once', payload: { n: 2 } }]) })
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '-k', 'loop', '--json'])).stdout)).toMatchObject({ replayed: 1 })
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    const again = JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--max-replays', '1', '--where', 'key == "loop"', '--json'])).stdout)
    expect(again).toMatchObject({ replayed: 0, parked: 1 })
    const listed = (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<Listing & { parked: boolean; replays: number }> }).entries
    expect(listed.map((e) => [e.key, e.parked, e.replays]).sort()).toEqual([
      ['loop', true, 1],
      ['once', false, 0],
    ])
    expect(JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--json'])).stdout)).toMatchObject({ replayed: 1, parked: 0 })
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Listing[] }).entries.map((e) => e.key)).toEqual(['loop'])
  })

  it('reports a message SQS moved to the DLQ itself (receive count exhausted) as such, and purges with --yes', async () => {
    const queue = await namespace({ settings: { maxReceiveCount: 2 } })
    await wal.run(['produce', '-n', 'orders', '-k', 'stuck', '-p', JSON.stringify(put('stuck'))])
    const url = await queueUrl(queue)
    // A consumer that receives and never finishes (it crashed): twice, then SQS's redrive takes over.
    for (let i = 0; i < 3; i++) {
      const { Messages = [] } = await testSqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1, VisibilityTimeout: 5 }))
      for (const m of Messages) await testSqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 }))
    }
    const listed = await waitFor(async () => {
      const entries = (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Listing[] }).entries
      return entries.length > 0 ? entries : null
    }) as Listing[]
    expect(listed[0]).toMatchObject({ key: 'stuck', errorClass: 'infrastructure', code: 'SQS_MAX_RECEIVES' })
    expect(listed[0]!.message).toMatch(/moved to the DLQ by SQS after \d+ receives \(maxReceiveCount 2\)/)
    expect((await wal.run(['dlq', 'purge', '-n', 'orders'])).code).toBe(2)
    expect(JSON.parse((await wal.run(['dlq', 'purge', '-n', 'orders', '--yes', '--json'])).stdout)).toMatchObject({ purged: 1 })
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
  })

  it('replays a message SQS moved to the DLQ itself (maxReceiveCount 1) to the namespace\'s targets, which apply it once', async () => {
    const queue = await namespace({ settings: { maxReceiveCount: 1 }, targets: { kv: { type: 'kv' }, api: { type: 'http', url: server.url, timeoutMs: 5000 } } })
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'moved', '-p', JSON.stringify(put('moved'))])).code).toBe(0)
    const url = await queueUrl(queue)
    // A consumer that received it and died: once is all maxReceiveCount 1 allows, then SQS moves it.
    for (let i = 0; i < 2; i++) {
      const { Messages = [] } = await testSqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1, VisibilityTimeout: 5 }))
      for (const m of Messages) await testSqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 }))
    }
    const listed = (await waitFor(async () => {
      const entries = (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Listing[] }).entries
      return entries.length > 0 ? entries : null
    })) as Listing[]
    expect(listed).toHaveLength(1)
    expect(listed[0]).toMatchObject({ key: 'moved', code: 'SQS_MAX_RECEIVES', target: '(any)' })

    const replay = await wal.run(['dlq', 'replay', '-n', 'orders', '--json'])
    expect(replay.code).toBe(0)
    expect(JSON.parse(replay.stdout)).toMatchObject({ replayed: 1, parked: 0 })
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code).toBe(0)
    expect((JSON.parse(consumed.stdout) as Summary).targets.map((t) => [t.target, t.applied, t.deadLettered])).toEqual([
      ['kv', 1, 0],
      ['api', 1, 0],
    ])
    expect(kvItems(wal.stateDir, 'orders')).toHaveLength(1)
    expect(server.received.map((r) => r.key)).toEqual(['moved'])
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
  })

  it('prints the replay progress line once for a short replay', async () => {
    await namespace()
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'a', payload: { not: 'an operation' } }]) })
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    const replay = await wal.run(['dlq', 'replay', '-n', 'orders'])
    expect(replay.code).toBe(0)
    expect(replay.stderr.split('\n').filter((l) => l.startsWith('wal: replayed'))).toHaveLength(1)
  })

  it('delivers a 20-minute delay neither early nor lost across a consumer restart (delays re-sent past maxNativeDelaySeconds)', async () => {
    // SQS is asked for at most 1 s at a time, so the 20 minutes are re-scheduled again and again: the
    // path of a delay beyond 15 minutes, walked in seconds; WAL_CLOCK_OFFSET then moves the clock past it.
    await namespace({ settings: { maxNativeDelaySeconds: 1 } })
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'later', '--delay', '20m', '-p', JSON.stringify(put('later'))])).code).toBe(0)
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'now', '-p', JSON.stringify(put('now'))])).code).toBe(0)
    const early = wal.spawn(['consume', '-n', 'orders', '--json'])
    let out = ''
    let err = ''
    early.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    early.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => early.on('close', resolve))
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 1, { timeoutMs: 30_000 }).catch((error: unknown) => {
      throw new Error(`${String(error)}; the consumer said: ${err}`)
    })
    await new Promise((resolve) => setTimeout(resolve, 3500))
    early.kill('SIGTERM')
    expect(await closed).toBe(0)
    const first = (JSON.parse(out) as Summary).targets[0]!
    expect(first.applied).toBe(1)
    expect(first.scheduled).toBeGreaterThanOrEqual(2)
    expect(kvItems(wal.stateDir, 'orders').map((r) => JSON.parse(r.item!).id)).toEqual(['now'])

    // A new consumer, 21 minutes later by wal's clock.
    const late = wal.spawn(['consume', '-n', 'orders', '--json'], { env: { WAL_CLOCK_OFFSET: '21m' } })
    let lateOut = ''
    late.stdout!.setEncoding('utf8').on('data', (d: string) => (lateOut += d))
    late.stderr!.resume()
    const lateClosed = new Promise<number | null>((resolve) => late.on('close', resolve))
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 2, { timeoutMs: 30_000 })
    late.kill('SIGTERM')
    expect(await lateClosed).toBe(0)
    expect((JSON.parse(lateOut) as Summary).targets[0]).toMatchObject({ applied: 1 })
    expect(jsonLines((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)).toEqual([])
  })

  it('on a FIFO queue, holds a delayed message and the later ones of its key until due, other keys going on', async () => {
    await namespace({ fifo: true, targets: { api: { type: 'http', url: server.url, timeoutMs: 5000 } }, settings: { maxNativeDelaySeconds: 1, maxReceiveCount: 100 } })
    await wal.run(['produce', '-n', 'orders', '-k', 'k', '--delay', '20m', '-p', '{"n":1}'])
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'k', payload: { n: 2 } }, { key: 'other', payload: { n: 0 } }]) })
    const early = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(early.targets[0]).toMatchObject({ applied: 1 })
    expect(server.received.map((r) => r.key)).toEqual(['other'])
    const late = wal.spawn(['consume', '-n', 'orders', '--json'], { env: { WAL_CLOCK_OFFSET: '21m' } })
    late.stdout!.resume()
    late.stderr!.resume()
    const closed = new Promise<number | null>((resolve) => late.on('close', resolve))
    await waitFor(() => server.received.length === 3, { timeoutMs: 30_000 })
    late.kill('SIGTERM')
    expect(await closed).toBe(0)
    expect(server.received.filter((r) => r.key === 'k').map((r) => (JSON.parse(r.body) as { n: number }).n)).toEqual([1, 2])
  })

  it('with the endpoint down: produce says so (exit 5) and acks nothing; the consumer waits with backoff and loses nothing', async () => {
    const queue = `wal-${randomBytes(5).toString('hex')}`
    prefixes.push(queue)
    const toxic = await proxy()
    writeSqsConfig(wal, queue, { endpoint: toxic.endpoint })
    expect((await wal.run(['ns', 'init', 'orders'])).code).toBe(0)
    const acked = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, payload: put(i) }))) })
    expect(jsonLines(acked.stdout)).toHaveLength(30)

    await toxic.enable(false)
    const refused = await wal.run(['produce', '-n', 'orders', '-p', '1'])
    expect(refused.code).toBe(5)
    expect(refused.stderr).toMatch(/SQS cluster "test".*cannot reach the endpoint/)
    expect(refused.stdout).toBe('')

    const child = wal.spawn(['consume', '-n', 'orders', '--json'])
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    // Opening the namespace needs SQS too: the consumer either waits in its poll loop or fails clearly.
    await waitFor(() => err.length > 0 || out.length > 0, { timeoutMs: 30_000 })
    await toxic.enable(true)
    const code = await Promise.race([closed, waitFor(() => kvItems(wal.stateDir, 'orders').length === 30, { timeoutMs: 60_000 }).then(() => 'applied' as const)])
    if (code !== 'applied') {
      // It gave up at start (exit 5, a clear message): a new consumer does everything once SQS is back.
      expect(code).toBe(5)
      expect(err).toMatch(/cannot reach the endpoint/)
      const again = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
      expect(again.targets[0]).toMatchObject({ applied: 30 })
    } else {
      child.kill('SIGTERM')
      expect(await closed).toBe(0)
      expect(err).toMatch(/cannot reach the endpoint.*retrying with backoff/)
    }
    expect(kvItems(wal.stateDir, 'orders')).toHaveLength(30)
  })

  it('an SQS target forwards mutations to a queue in the log form, readable by any client', async () => {
    const queue = await namespace({ extra: {} })
    const outbox = `${queue}-outbox`
    prefixes.push(outbox)
    // A second namespace on the outbox queue creates it; the first forwards to it.
    writeSqsConfigWithTarget(wal, queue, outbox)
    expect((await wal.run(['ns', 'init', 'outbox'])).code).toBe(0)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((i) => ({ key: `k${i}`, payload: { i }, headers: { h: String(i) } }))) })
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets[0]).toMatchObject({ target: 'out', applied: 3 })
    const forwarded = jsonLines<{ key: string; payload: { i: number }; headers: Record<string, string> }>((await wal.run(['tail', '-n', 'outbox', '--json'])).stdout)
    expect(forwarded.map((e) => [e.key, e.payload.i, e.headers.h]).sort()).toEqual([
      ['k1', 1, '1'],
      ['k2', 2, '2'],
      ['k3', 3, '3'],
    ])
  })

  it('an SQS target forwards a page of an embedded namespace in batches: every message arrives once, exact; one above SQS\'s 256 KiB limit is dead-lettered alone', async () => {
    // "orders" reads the queue; "src" (embedded) forwards to it.
    const queue = await namespace({ extra: {} })
    writeSqsConfig(wal, queue, { extra: { src: { targets: { out: { type: 'sqs', cluster: 'test', queue } } } } })
    const input = Array.from({ length: 300 }, (_, i) => ({ key: `k${i % 7}\u0007`, payload: { i, pad: i === 77 ? 'z'.repeat(300 * 1024) : `é${i}` }, headers: { n: String(i) } }))
    expect((await wal.run(['produce', '-n', 'src'], { input: ndjson(input) })).code).toBe(0)
    const consumed = await wal.run(['consume', '-n', 'src', '--until-idle', '--json'])
    // Exit 8: one mutation was dead-lettered.
    expect(consumed.code).toBe(8)
    expect((JSON.parse(consumed.stdout) as Summary).targets[0]).toMatchObject({ target: 'out', applied: 299, deadLettered: 1, lag: 0 })
    const dead = deadLetters(wal.stateDir, 'src')
    expect(dead).toHaveLength(1)
    expect(dead[0]).toMatchObject({ target: 'out', key: 'k0\u0007', error_class: 'fatal', code: 'WAL_PAYLOAD_TOO_LARGE' })
    const forwarded = jsonLines<{ key: string; payload: { i: number; pad: string }; headers: Record<string, string> }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    const expected = input.filter((m) => m.payload.i !== 77)
    expect(forwarded.map((e) => [e.key, e.payload.i, e.payload.pad, e.headers.n]).sort()).toEqual(expected.map((m) => [m.key, m.payload.i, m.payload.pad, m.headers.n]).sort())
  })
})

function writeSqsConfigWithTarget(wal: Sandbox, queue: string, outbox: string): void {
  writeSqsConfig(wal, queue, {
    targets: { out: { type: 'sqs', cluster: 'test', queue: outbox } },
    extra: { outbox: { backend: 'sqs', cluster: 'test', queue: outbox } },
  })
}
