// `wal daemon` on an SQS namespace: one consumer for all its targets over the shard queues, writes over
// HTTP and from the CLI acked with queue and MessageId, status and metrics per target, dead letters in
// the SQS DLQ, reload, and a drained stop. The real binary against the test ElasticMQ.
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { isAlive, killDaemons, pidFileExists, post, startForegroundDaemon, useDaemonToken } from '../helpers/daemon.js'
import { startTargetServer, type TargetServer } from '../helpers/http-target-server.js'
import { endpoints } from '../../scripts/services/endpoints.js'
import { deleteQueues, sqsNamespace, writeSqsConfig } from '../helpers/sqs-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let server: TargetServer
let detachedPid: number | undefined
const prefixes: string[] = []
const proxies: string[] = []
beforeEach(async () => {
  wal = makeSandbox()
  server = await startTargetServer()
  detachedPid = undefined
})
afterEach(async () => {
  await killDaemons(detachedPid)
  await server.close()
  wal.cleanup()
  await deleteQueues(prefixes.splice(0))
  for (const name of proxies.splice(0)) await fetch(`${endpoints.toxiproxy.api}/proxies/${name}`, { method: 'DELETE' }).catch(() => undefined)
})

/** A Toxiproxy proxy of this test's own in front of ElasticMQ (the shared ones are left alone). */
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

/** Adds daemon settings (and changes to the namespace) to the config sqsNamespace wrote. */
function amendConfig(change: (config: { namespaces: { orders: Record<string, unknown> } } & Record<string, unknown>) => void): void {
  const path = join(wal.cwd, '.walrc.json')
  const config = JSON.parse(readFileSync(path, 'utf8')) as { namespaces: { orders: Record<string, unknown> } } & Record<string, unknown>
  change(config)
  writeFileSync(path, JSON.stringify(config))
}

interface ConsumerStatus {
  namespace: string
  target: string
  state: string
  partitions: number[]
  applied: number
  retried: number
  deadLettered: number
  lag: number
  restarts: number
}

const put = (id: string) => ({ op: 'put', table: 't', key: { id }, item: { id } })
const status = async (): Promise<ConsumerStatus[]> => (JSON.parse((await wal.run(['daemon', 'status', '--json'])).stdout) as { consumers: ConsumerStatus[] }).consumers

describe('wal daemon on an SQS namespace', () => {
  it('applies writes from HTTP and the CLI to every target with one consumer, dead-letters into the SQS DLQ, reloads, and drains on stop', async () => {
    prefixes.push(
      await sqsNamespace(wal, {
        shards: 2,
        targets: {
          store: { type: 'kv' },
          api: { type: 'http', url: server.url, timeoutMs: 5000, retry: { maxAttempts: 2, initialBackoffMs: 200, jitter: 0 } },
        },
      }),
    )
    amendConfig((c) => (c.daemon = { port: 0, drainTimeoutMs: 10_000 }))
    server.always('bad', 503)

    const started = await wal.run(['daemon', 'start', '--json'])
    expect(started.code, started.stderr).toBe(0)
    const { pid, url } = JSON.parse(started.stdout) as { pid: number; url: string }
    useDaemonToken(wal, url)
    detachedPid = pid

    // Acks carry the queue and MessageId, as `wal produce` prints them, not offsets.
    const one = await post(`${url}/v1/namespaces/orders/mutations`, { key: 'a', payload: put('a') })
    expect(one.status, JSON.stringify(one.body)).toBe(200)
    expect(one.body).toMatchObject({ durable: true, message: 'durable', namespace: 'orders', queue: expect.stringMatching(/^wal-[0-9a-f]+-[01]$/), messageId: expect.any(String) })
    expect(one.body).not.toHaveProperty('offset')
    const batch = await post(`${url}/v1/namespaces/orders/mutations`, [{ key: 'b', payload: put('b') }, { key: 'bad', payload: put('bad') }])
    expect(batch.status, JSON.stringify(batch.body)).toBe(200)
    expect(batch.body).toMatchObject({ durable: true, message: '2 mutations durable' })
    expect((batch.body.results as Array<Record<string, unknown>>).map((r) => [r.index, r.durable, typeof r.messageId])).toEqual([
      [0, true, 'string'],
      [1, true, 'string'],
    ])
    const viaCli = await wal.run(['produce', '-n', 'orders', '-k', 'c', '-p', JSON.stringify(put('c'))])
    expect(viaCli.code, viaCli.stderr).toBe(0)
    expect(viaCli.stdout).toMatch(/queue=wal-[0-9a-f]+-[01] messageId=\S+ durable=true/)

    // Both targets get everything; "bad" fails at the API and is dead-lettered after its 2 attempts.
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 4, { timeoutMs: 30_000 })
    const consumers = await waitFor(
      async () => {
        const s = await status()
        const api = s.find((c) => c.target === 'api')
        return api?.deadLettered === 1 && s.every((c) => c.lag === 0) ? s : null
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    )
    expect(consumers!.map((c) => [c.namespace, c.target, c.state, c.partitions, c.applied, c.retried, c.deadLettered, c.lag, c.restarts])).toEqual([
      ['orders', 'store', 'running', [0, 1], 4, 0, 0, 0, 0],
      ['orders', 'api', 'running', [0, 1], 3, 1, 1, 0, 0],
    ])
    expect(new Set(server.received.filter((r) => r.status === 200).map((r) => r.key))).toEqual(new Set(['a', 'b', 'c']))
    const dead = (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ key: string; target: string }> }).entries
    expect(dead.map((e) => [e.key, e.target])).toEqual([['bad', 'api']])

    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toContain('wal_produced_total{namespace="orders"} 3')
    expect(metrics).toContain('wal_applied_total{namespace="orders",target="store"} 4')
    expect(metrics).toContain('wal_retried_total{namespace="orders",target="api"} 1')
    expect(metrics).toContain('wal_dead_lettered_total{namespace="orders",target="api"} 1')
    expect(metrics).toMatch(/wal_consumer_lag\{namespace="orders",target="api",partition="1"\} 0/)

    // A change to one target restarts the namespace's one consumer, which goes on applying.
    amendConfig((c) => ((c.namespaces.orders.targets as Record<string, Record<string, unknown>>).api!.timeoutMs = 4000))
    const reload = await wal.run(['daemon', 'reload', '--json'])
    expect(reload.code, reload.stderr).toBe(0)
    expect(JSON.parse(reload.stdout)).toMatchObject({ ok: true, added: [], removed: [], changed: ['orders/*'], unchanged: [] })
    expect((await post(`${url}/v1/namespaces/orders/mutations`, { key: 'd', payload: put('d') })).status).toBe(200)
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 5, { timeoutMs: 30_000 })

    const stopped = await wal.run(['daemon', 'stop', '--json'])
    expect(stopped.code, stopped.stderr).toBe(0)
    expect(JSON.parse(stopped.stdout)).toMatchObject({ running: true, pid, killed: false })
    expect(isAlive(pid)).toBe(false)
    expect(pidFileExists(wal)).toBe(false)
    const logs = (await wal.run(['daemon', 'logs'])).stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(logs.filter((l) => l.event === 'consumer-failed')).toEqual([])
    expect(logs.find((l) => l.event === 'dead-lettered')).toMatchObject({ namespace: 'orders', target: 'api', key: 'bad' })
    expect(logs.filter((l) => l.event === 'consumer-stopped').map((l) => [l.namespace, l.target, l.drained])).toEqual([
      ['orders', 'store,api', true],
      ['orders', 'store,api', true],
    ])
    // Nothing was left in the queues for the next consumer.
    expect((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).toBe('')
  }, 180_000)

  it("restarts a namespace's consumer with backoff while its queues are missing, then consumes only its shard's queues", async () => {
    const queue = `wal-${randomBytes(5).toString('hex')}`
    prefixes.push(queue)
    writeSqsConfig(wal, queue, { shards: 2 })
    amendConfig((c) => (c.daemon = { port: 0, shard: '1/2', drainTimeoutMs: 10_000 }))
    const daemon = await startForegroundDaemon(wal)

    // No `ns init` yet: the consumer fails, says which, and is started again.
    await waitFor(() => daemon.events('consumer-failed').length >= 2, { timeoutMs: 30_000 })
    expect(daemon.events('consumer-failed')[0]).toMatchObject({ namespace: 'orders', target: 'kv', shard: '1/2' })
    const failing = await status()
    expect(failing).toEqual([expect.objectContaining({ namespace: 'orders', target: 'kv', state: 'failed' })])
    expect(failing[0]!.restarts).toBeGreaterThanOrEqual(2)
    // With backoff: 1 s, then 2 s, … between attempts, not a tight loop.
    const [first, second] = daemon.events('consumer-failed')
    expect(second!.retryInMs).toBe(2 * (first!.retryInMs as number))

    expect((await wal.run(['ns', 'init', 'orders'])).code).toBe(0)
    const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((k) => ({ key: k, payload: put(k) }))) })
    expect(produced.code, produced.stderr).toBe(0)
    const acks = jsonLines<{ id: string; queue: string; partition: number }>(produced.stdout)
    const mine = acks.filter((a) => a.partition === 1)
    expect(mine.length).toBeGreaterThan(0)
    expect(mine.length).toBeLessThan(acks.length)

    // Shard 1/2 of 2 queues is queue 1: its messages are applied, queue 0's are left for another consumer.
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === mine.length, { timeoutMs: 30_000 })
    expect(kvItems(wal.stateDir, 'orders').map((r) => r.mutation_id).sort()).toEqual(mine.map((a) => a.id).sort())
    const consumers = await waitFor(async () => {
      const s = await status()
      return s[0]?.state === 'running' && s[0].lag === 0 ? s : null
    })
    expect(consumers![0]).toMatchObject({ partitions: [1], applied: mine.length })
    const left = jsonLines<{ id: string }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(left.map((e) => e.id).sort()).toEqual(acks.filter((a) => a.partition === 0).map((a) => a.id).sort())

    // Its log says why, should it not exit 0.
    expect(await daemon.stop(), daemon.output()).toBe(0)
    expect(pidFileExists(wal)).toBe(false)
    expect(daemon.events('consumer-stopped')).toEqual([expect.objectContaining({ namespace: 'orders', target: 'kv', drained: true })])
  }, 120_000)

  it('with the SQS endpoint down: writes get 503 and nothing is acked, the consumer says so and waits, and goes on once it is back', async () => {
    const queue = `wal-${randomBytes(5).toString('hex')}`
    prefixes.push(queue)
    const toxic = await proxy()
    writeSqsConfig(wal, queue, { endpoint: toxic.endpoint })
    amendConfig((c) => (c.daemon = { port: 0, drainTimeoutMs: 10_000 }))
    expect((await wal.run(['ns', 'init', 'orders'])).code).toBe(0)
    const daemon = await startForegroundDaemon(wal)
    await waitFor(async () => (await status())[0]?.state === 'running')

    await toxic.enable(false)
    const refused = await post(`${daemon.url}/v1/namespaces/orders/mutations`, { key: 'a', payload: put('a') })
    expect(refused.status, JSON.stringify(refused.body)).toBe(503)
    expect(refused.body).toMatchObject({ durable: false, message: expect.stringMatching(/cannot reach the endpoint/) })
    expect(refused.headers.get('retry-after')).toBe('1')
    await waitFor(() => daemon.events('consumer-warning').some((e) => /retrying with backoff/.test(String(e.msg))), { timeoutMs: 30_000 })
    expect(daemon.events('consumer-warning')[0]).toMatchObject({ namespace: 'orders', target: 'kv' })

    await toxic.enable(true)
    expect((await post(`${daemon.url}/v1/namespaces/orders/mutations`, { key: 'b', payload: put('b') })).status).toBe(200)
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 1, { timeoutMs: 60_000 })
    expect(kvItems(wal.stateDir, 'orders')[0]!.pk).toContain('"b"')
    await waitFor(() => daemon.events('consumer-warning').some((e) => /answers again/.test(String(e.msg))), { timeoutMs: 30_000 })
    // Its log says why, should it not exit 0.
    expect(await daemon.stop(), daemon.output()).toBe(0)
  }, 120_000)
})
