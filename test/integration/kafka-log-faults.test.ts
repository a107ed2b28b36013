import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { deleteTopics, kafkaNamespace } from '../helpers/kafka-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  // The broker advertises the proxy's port, so Kafka faults go through the shared proxy: restore only it.
  await setKafkaProxy(true)
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

async function toxiproxy(path: string, init: RequestInit = {}): Promise<void> {
  const response = await fetch(`${endpoints.toxiproxy.api}${path}`, { ...init, headers: { 'content-type': 'application/json' } })
  if (!response.ok) throw new Error(`toxiproxy ${path}: ${response.status}`)
}

const setKafkaProxy = (enabled: boolean) => toxiproxy('/proxies/kafka', { method: 'POST', body: JSON.stringify({ enabled }) })

async function namespace(options: Parameters<typeof kafkaNamespace>[1] = {}): Promise<string> {
  const topic = await kafkaNamespace(wal, options)
  topics.push(topic)
  return topic
}

/** Rewrites the cluster settings of an existing namespace's config. */
async function reconfigure(cluster: Record<string, unknown>): Promise<void> {
  const { readFileSync, writeFileSync } = await import('node:fs')
  const path = join(wal.cwd, '.walrc.json')
  const config = JSON.parse(readFileSync(path, 'utf8')) as { clusters: { kafka: { test: unknown } } }
  config.clusters.kafka.test = cluster
  writeFileSync(path, JSON.stringify(config))
}

const put = (id: string, v: number) => ({ key: id, payload: { op: 'put', table: 't', key: { id }, item: { id, v } } })

describe('Kafka namespaces under faults', () => {
  it('work over mTLS, and a missing client certificate is a clear configuration error, not a hang', async () => {
    const tls = endpoints.kafka.tls.dir
    const good = { brokers: endpoints.kafka.sslBrokers, ssl: { ca: join(tls, 'ca.pem'), cert: join(tls, 'client.pem'), key: join(tls, 'client-key.pem') } }
    await namespace({ cluster: good })
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])).code).toBe(0)
    expect(jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)).toHaveLength(1)

    await reconfigure({ brokers: endpoints.kafka.sslBrokers, ssl: { ca: join(tls, 'ca.pem') }, connectionTimeoutMs: 3000 })
    const refused = await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '2'])
    expect(refused.code).toBe(3)
    expect(refused.stderr).toMatch(/TLS handshake failed/)
    expect(refused.stderr).toMatch(/clusters\.kafka\.test\.ssl/)
  })

  it('work over SCRAM, and a wrong password is a clear configuration error, not a hang', async () => {
    const { username, password } = endpoints.kafka.scram
    await namespace({ cluster: { brokers: endpoints.kafka.saslBrokers, sasl: { mechanism: 'scram-sha-512', username, password } } })
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])).code).toBe(0)
    await reconfigure({ brokers: endpoints.kafka.saslBrokers, sasl: { mechanism: 'scram-sha-512', username, password: 'wrong' } })
    const refused = await wal.run(['tail', '-n', 'orders'])
    expect(refused.code).toBe(3)
    expect(refused.stderr).toMatch(/authentication failed/)
    expect(refused.stderr).toMatch(/clusters\.kafka\.test\.sasl/)
  })

  it('SASL configured against a PLAINTEXT listener: exit 3 saying the listener does not take SASL, with how to fix it', async () => {
    const { username, password } = endpoints.kafka.scram
    await namespace()
    await reconfigure({ brokers: endpoints.kafka.brokers, sasl: { mechanism: 'scram-sha-512', username, password }, connectionTimeoutMs: 3000 })
    for (const args of [['produce', '-n', 'orders', '-k', 'a', '-p', '1'], ['tail', '-n', 'orders']]) {
      const refused = await wal.run(args)
      expect(refused.code, refused.stderr).toBe(3)
      expect(refused.stderr).toContain(`SASL is configured, but the broker's listener does not take SASL`)
      expect(refused.stderr).toContain(
        "hint: point clusters.kafka.test.brokers at the brokers' SASL listener (SASL_PLAINTEXT or SASL_SSL), or remove clusters.kafka.test.sasl if this listener is meant (PLAINTEXT or SSL)",
      )
    }
  })

  /** Runs `wal produce --json` as a stream: the first lines, then the outage, then the rest. */
  async function produceThroughOutage(first: unknown[], rest: unknown[]): Promise<{ code: number | null; out: string; err: string }> {
    const child = wal.spawn(['produce', '-n', 'orders', '--json'])
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    child.stdin!.write(ndjson(first))
    await waitFor(() => out.split('\n').filter(Boolean).length >= first.length)
    await setKafkaProxy(false)
    child.stdin!.write(ndjson(rest))
    child.stdin!.end()
    const code = await closed
    await setKafkaProxy(true)
    return { code, out, err }
  }

  it('reports writes cut off by a broker outage as durable "unknown" (exit 6), and keeps every acked one', async () => {
    await namespace({ cluster: { brokers: endpoints.kafka.toxicBrokers, deliveryTimeoutMs: 3000, connectionTimeoutMs: 1000 }, partitions: 2 })
    const input = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 4}`, payload: { i } }))
    const { code, out, err } = await produceThroughOutage(input.slice(0, 20), input.slice(20))
    expect(code).toBe(6)
    expect(err).toMatch(/outcome of the write is unknown/)
    const lines = jsonLines<Ack>(out)
    expect(lines.filter((l) => l.durable === true)).toHaveLength(20)
    expect(lines.filter((l) => (l.durable as unknown) === 'unknown').map((l) => l.line)).toEqual(Array.from({ length: 10 }, (_, i) => 21 + i))
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    const ids = new Set(tailed.map((e) => e.id))
    for (const ack of lines.filter((l) => l.durable === true)) expect(ids.has(ack.id)).toBe(true)
  })

  it('after an outage, re-producing with the same idempotency keys writes each mutation exactly once', async () => {
    await namespace({ cluster: { brokers: endpoints.kafka.toxicBrokers, deliveryTimeoutMs: 3000, connectionTimeoutMs: 1000 }, partitions: 2 })
    const input = Array.from({ length: 40 }, (_, i) => ({ key: `k${i % 4}`, payload: { i }, idempotencyKey: `op-${i}` }))
    const { code, out } = await produceThroughOutage(input.slice(0, 20), input.slice(20))
    // Cut off before writing (5: nothing from that line on was written) or while writing (6: unknown).
    expect([5, 6]).toContain(code)
    expect(jsonLines<Ack>(out).filter((l) => l.durable === true)).toHaveLength(20)
    const again = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(input) })
    expect(again.code).toBe(0)
    expect(jsonLines<Ack>(again.stdout).slice(0, 20).every((a) => a.duplicate)).toBe(true)
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tailed.map((e) => e.idempotencyKey).sort()).toEqual(input.map((m) => m.idempotencyKey).sort())
  })

  it('loses nothing when consumers are killed with SIGKILL: the store ends at the last write of every key', async () => {
    await namespace({ partitions: 4 })
    const input = Array.from({ length: 3000 }, (_, i) => put(`k${i % 50}`, i))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
    for (let round = 0; round < 3; round++) {
      const child = wal.spawn(['consume', '-n', 'orders', '--concurrency', '4', '--rate', '2000/s', '--lease-ttl', '6s'])
      await new Promise((resolve) => setTimeout(resolve, 700 + round * 300))
      child.kill('SIGKILL')
      await new Promise((resolve) => child.on('close', resolve))
    }
    const done = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json', '--lease-ttl', '6s'])
    expect(done.code).toBe(0)
    const items = kvItems(wal.stateDir, 'orders')
    expect(items).toHaveLength(50)
    for (const item of items) {
      const { id, v } = JSON.parse(item.item!) as { id: string; v: number }
      expect(v).toBe(2950 + Number(id.slice(1)))
    }
  })

  it('moves partitions between --shard auto consumers as they join and die', async () => {
    await namespace({ partitions: 4 })
    const partitionsOf = (text: string): number[][] =>
      text
        .split('\n')
        .filter((l) => l.includes('"partitions"'))
        .map((l) => (JSON.parse(l) as { partitions: number[] }).partitions)
    const a = wal.spawn(['consume', '-n', 'orders', '--shard', 'auto', '--json', '--lease-ttl', '6s'])
    let errA = ''
    a.stderr!.setEncoding('utf8').on('data', (d: string) => (errA += d))
    a.stdout!.resume()
    await waitFor(() => partitionsOf(errA).at(-1)?.length === 4, { timeoutMs: 30_000 })
    const b = wal.spawn(['consume', '-n', 'orders', '--shard', 'auto', '--json', '--lease-ttl', '6s'])
    let errB = ''
    b.stderr!.setEncoding('utf8').on('data', (d: string) => (errB += d))
    b.stdout!.resume()
    await waitFor(() => partitionsOf(errA).at(-1)?.length === 2 && partitionsOf(errB).at(-1)?.length === 2, { timeoutMs: 30_000 })
    expect([...partitionsOf(errA).at(-1)!, ...partitionsOf(errB).at(-1)!].sort()).toEqual([0, 1, 2, 3])
    b.kill('SIGKILL')
    await waitFor(() => partitionsOf(errA).at(-1)?.length === 4, { timeoutMs: 30_000 })
    a.kill('SIGTERM')
    await new Promise((resolve) => a.on('close', resolve))
  })
})
