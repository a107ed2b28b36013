import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer, type TargetServer } from '../helpers/http-target-server.js'
import { deleteTopics, kafkaNamespace, testKafka } from '../helpers/kafka-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let server: TargetServer
const topics: string[] = []
beforeEach(async () => {
  wal = makeSandbox()
  server = await startTargetServer()
})
afterEach(async () => {
  await server.close()
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

async function namespace(options: Parameters<typeof kafkaNamespace>[1] = {}): Promise<string> {
  const topic = await kafkaNamespace(wal, options)
  topics.push(topic)
  return topic
}

async function tail(...args: string[]): Promise<Envelope[]> {
  const result = await wal.run(['tail', '-n', 'orders', '--json', ...args])
  expect(result.stderr).toBe('')
  expect(result.code).toBe(0)
  return jsonLines<Envelope>(result.stdout)
}

describe('a namespace on Kafka', () => {
  it('ns init creates the log, DLQ and state topics, and a second run reports them as existing', async () => {
    const topic = await namespace({ partitions: 3 })
    const again = JSON.parse((await wal.run(['ns', 'init', 'orders', '--json'])).stdout) as { parts: Array<{ role: string; name: string; status: string; partitions: number }> }
    expect(again.parts.map((p) => [p.role, p.name, p.status, p.partitions])).toEqual([
      ['log', topic, 'exists', 3],
      ['dlq', `${topic}.dlq`, 'exists', 1],
      ['schedule', `${topic}.wal-schedule`, 'exists', 3],
      ['history', `${topic}.wal-history`, 'exists', 3],
      ['state', `${topic}.wal-state`, 'exists', 1],
    ])
    const show = JSON.parse((await wal.run(['ns', 'show', 'orders', '--json'])).stdout) as { backend: string; partitions: number; log: { location: string } }
    expect(show).toMatchObject({ backend: 'kafka', partitions: 3 })
    expect(show.log.location).toContain(topic)
  })

  it('refuses to produce before ns init, saying how to create the topic', async () => {
    const topic = await namespace()
    await deleteTopics([topic])
    const result = await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])
    expect(result.code).toBe(7)
    expect(result.stderr).toMatch(/topic "wal-log-[0-9a-f]+" does not exist/)
    expect(result.stderr).toContain('wal ns init -n orders')
  })

  it('round-trips keys, headers, binary payloads and createdAt through produce and tail, in per-key order', async () => {
    await namespace()
    const input = [
      { key: 'user-1', payload: { n: 1 }, headers: { source: 'crm', trace: 'a b' }, createdAt: '2026-01-02T03:04:05.678Z' },
      { key: 'user-2', payload: Buffer.from([0, 159, 146, 150, 255]).toString('base64'), payloadEncoding: 'base64' },
      { key: 'user-1', payload: { n: 2 }, notBefore: '2030-01-01T00:00:00.000Z', target: 'kv' },
      { key: 'user-1', payload: 'text', attempts: 2, failures: [{ at: '2026-01-01T00:00:00.000Z', target: 'kv', errorClass: 'retryable', message: 'boom', attempt: 1 }] },
    ]
    const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(input) })
    expect(produced.code).toBe(0)
    const acks = jsonLines<Ack>(produced.stdout)
    expect(acks.map((a) => a.durable)).toEqual([true, true, true, true])
    const user1 = acks.filter((_, i) => input[i]!.key === 'user-1')
    expect(new Set(user1.map((a) => a.partition)).size).toBe(1)
    expect(user1.map((a) => a.offset)).toEqual([...user1.map((a) => a.offset)].sort((a, b) => a - b))

    const tailed = await tail()
    expect(tailed).toHaveLength(4)
    const byId = new Map(tailed.map((e) => [e.id, e]))
    const first = byId.get(acks[0]!.id)!
    expect(first).toMatchObject({ key: 'user-1', payload: { n: 1 }, headers: { source: 'crm', trace: 'a b' }, createdAt: '2026-01-02T03:04:05.678Z', partition: acks[0]!.partition, offset: acks[0]!.offset })
    expect(byId.get(acks[1]!.id)).toMatchObject({ payloadEncoding: 'base64', payload: Buffer.from([0, 159, 146, 150, 255]).toString('base64') })
    expect(byId.get(acks[2]!.id)).toMatchObject({ notBefore: '2030-01-01T00:00:00.000Z', target: 'kv' })
    expect(byId.get(acks[3]!.id)).toMatchObject({ attempts: 2, failures: [{ errorClass: 'retryable', message: 'boom', attempt: 1 }] })

    // tail --json → produce into a second namespace → tail: the same envelopes.
    const again = await wal.run(['produce', '-n', 'orders', '--json'], { input: tailed.map((e) => JSON.stringify(e)).join('\n') + '\n' })
    expect(again.code).toBe(0)
    const twice = await tail()
    const copies = twice.filter((e) => !acks.some((a) => a.offset === e.offset && a.partition === e.partition))
    const strip = ({ offset: _o, appendedAt: _a, ...rest }: Envelope) => rest
    expect(copies.map(strip).sort((a, b) => String(a.id).localeCompare(String(b.id)))).toEqual(tailed.map(strip).sort((a, b) => String(a.id).localeCompare(String(b.id))))
  })

  it('acks a repeated idempotency key as a duplicate of the first, in the same run and in a later one', async () => {
    await namespace()
    const first = jsonLines<Ack>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([{ key: 'a', payload: 1, idempotencyKey: 'once' }, { key: 'a', payload: 1, idempotencyKey: 'once' }]) })).stdout)
    expect(first[1]).toMatchObject({ id: first[0]!.id, offset: first[0]!.offset, duplicate: true })
    const later = await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1', '--idempotency-key', 'once', '--json'])
    expect(jsonLines<Ack>(later.stdout)[0]).toMatchObject({ id: first[0]!.id, duplicate: true })
    expect(await tail()).toHaveLength(1)
  })

  it('tails by offset and time, stops at the end it saw at start, and filters by key', async () => {
    await namespace({ partitions: 1 })
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3, 4, 5].map((i) => ({ key: i % 2 ? 'odd' : 'even', payload: { i } }))) })
    const middle = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 20))
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([6, 7].map((i) => ({ key: 'late', payload: { i } }))) })
    expect((await tail('--from', '2')).map((e) => (e.payload as { i: number }).i)).toEqual([3, 4, 5, 6, 7])
    expect((await tail('--from', new Date(middle).toISOString())).map((e) => (e.payload as { i: number }).i)).toEqual([6, 7])
    expect((await tail('-k', 'odd')).map((e) => (e.payload as { i: number }).i)).toEqual([1, 3, 5])
    expect((await tail('--max', '2')).map((e) => (e.payload as { i: number }).i)).toEqual([1, 2])
  })

  it('tail --until end exits over offset gaps: aborted transactions and their markers are skipped', async () => {
    const topic = await namespace({ partitions: 1 })
    const producer = testKafka.producer({ transactionalId: `wal-test-${randomBytes(4).toString('hex')}`, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    for (const [n, commit] of [
      [1, true],
      [2, false],
      [3, true],
    ] as const) {
      const transaction = await producer.transaction()
      await transaction.send({ topic, messages: [{ key: 'tx', value: JSON.stringify({ n }) }] })
      if (commit) await transaction.commit()
      else await transaction.abort()
    }
    await producer.disconnect()
    const marks = JSON.parse((await wal.run(['ns', 'show', 'orders', '--json'])).stdout) as { marks: Array<{ high: number }> }
    // Three records and three transaction markers: offsets 0-5, of which two hold committed records.
    expect(marks.marks[0]!.high).toBe(6)
    const tailed = await tail()
    expect(tailed.map((e) => e.payload)).toEqual([{ n: 1 }, { n: 3 }])
    expect(tailed.map((e) => e.offset)).toEqual([0, 4])
  })

  it('follows new records with tail --follow', async () => {
    await namespace()
    await wal.run(['produce', '-n', 'orders', '-k', 'x', '-p', '{"before":true}'])
    const child = wal.spawn(['tail', '-n', 'orders', '--follow', '--from', 'beginning', '--json'])
    let out = ''
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    // Once the older record is out, tail is reading: what comes next reaches it only by following.
    await waitFor(() => out.includes('"before":true'))
    await wal.run(['produce', '-n', 'orders', '-k', 'x', '-p', '{"live":true}'])
    await waitFor(() => out.includes('"live":true'))
    child.kill('SIGTERM')
  })

  it('is readable by another Kafka client, and tails and consumes records another client wrote', async () => {
    const topic = await namespace({ partitions: 2 })
    const acks = jsonLines<Ack>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([{ key: 'k1', payload: { op: 'put', table: 't', key: { id: 'k1' }, item: { id: 'k1', v: 1 } }, headers: { h: 'v' } }]) })).stdout)
    const consumer = testKafka.consumer({ groupId: `other-${randomBytes(4).toString('hex')}` })
    const seen: Array<{ key: string; value: string; headers: Record<string, string>; partition: number }> = []
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ message, partition }) => {
        seen.push({ key: String(message.key), value: String(message.value), partition, headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])) })
      },
    })
    await waitFor(() => seen.length >= 1, { timeoutMs: 30_000 })
    await consumer.disconnect()
    expect(seen[0]).toMatchObject({ key: 'k1', partition: acks[0]!.partition, headers: { h: 'v', 'wal-id': acks[0]!.id } })
    expect(JSON.parse(seen[0]!.value)).toEqual({ op: 'put', table: 't', key: { id: 'k1' }, item: { id: 'k1', v: 1 } })

    const producer = testKafka.producer()
    await producer.connect()
    await producer.send({
      topic,
      messages: [
        { key: 'k2', value: JSON.stringify({ op: 'put', table: 't', key: { id: 'k2' }, item: { id: 'k2', v: 2 } }), headers: { origin: 'legacy' } },
        { key: null, value: Buffer.from([1, 2, 3]) },
      ],
    })
    await producer.disconnect()
    const tailed = await tail()
    const foreign = tailed.find((e) => e.key === 'k2')!
    expect(foreign).toMatchObject({ payload: { op: 'put', table: 't', key: { id: 'k2' }, item: { id: 'k2', v: 2 } }, headers: { origin: 'legacy' }, payloadEncoding: 'json' })
    expect(foreign.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/)
    expect(tailed.find((e) => e.payloadEncoding === 'base64')).toMatchObject({ payload: Buffer.from([1, 2, 3]).toString('base64') })
    // The same record gets the same id every time it is read.
    expect((await tail()).find((e) => e.key === 'k2')!.id).toBe(foreign.id)

    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code).toBe(8) // the binary record is dead-lettered during the run
    // The binary record is no kv operation: it goes to the DLQ; both puts are applied.
    expect(kvItems(wal.stateDir, 'orders').map((r) => JSON.parse(r.item!).id).sort()).toEqual(['k1', 'k2'])
    const dlq = JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ key: string }> }
    expect(dlq.entries).toHaveLength(1)
  })
})

describe('consumers on a Kafka namespace', () => {
  it('applies each of 4,500 mutations once, in per-key order, reading the log a page at a time', async () => {
    await namespace({ targets: { api: { type: 'http', url: server.url } } })
    // More records than one page (1,000) and than one fetch of a partition: pages end mid-fetch.
    const input = Array.from({ length: 4500 }, (_, i) => ({ key: `k${i % 7}`, payload: { i, pad: 'x'.repeat(300) } }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json', '--concurrency', '64'])
    expect(consumed.code).toBe(0)
    expect(JSON.parse(consumed.stdout).targets[0]).toMatchObject({ applied: 4500, lag: 0 })
    const seen = server.received.map((r) => ({ key: r.key, i: (JSON.parse(r.body) as { i: number }).i }))
    expect(seen).toHaveLength(4500)
    for (let k = 0; k < 7; k++) {
      expect(seen.filter((r) => r.key === `k${k}`).map((r) => r.i)).toEqual(input.filter((m) => m.key === `k${k}`).map((m) => m.payload.i))
    }
  })

  it('retry with backoff, dead-letter with the failure in DLQ headers, and replay once the target is fixed', async () => {
    const topic = await namespace({ targets: { api: { type: 'http', url: server.url, retry: { maxAttempts: 3, initialBackoffMs: 20, maxBackoffMs: 50 } } } })
    server.always('flaky', 503)
    server.always('bad', 400)
    server.failFirst('retry-once', 1, 503)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'flaky', payload: { i: 1 } }, { key: 'bad', payload: { i: 2 } }, { key: 'good', payload: { i: 3 } }]) })
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code).toBe(8)
    expect(JSON.parse(consumed.stdout).targets[0]).toMatchObject({ applied: 1, deadLettered: 2, lag: 0 })
    expect(server.received.filter((r) => r.key === 'flaky')).toHaveLength(3)

    const entries = (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ seq: number; key: string; code: string; errorClass: string }> }).entries
    expect(entries.map((e) => [e.key, e.code, e.errorClass]).sort()).toEqual([
      ['bad', 'HTTP_400', 'fatal'],
      ['flaky', 'HTTP_503', 'retryable'],
    ])
    // The DLQ topic is plain Kafka: the failure is in headers, the value is the payload.
    const dlqRecords: Array<{ headers: Record<string, string>; value: string }> = []
    const reader = testKafka.consumer({ groupId: `dlq-${randomBytes(4).toString('hex')}` })
    await reader.connect()
    await reader.subscribe({ topic: `${topic}.dlq`, fromBeginning: true })
    await reader.run({ eachMessage: async ({ message }) => void dlqRecords.push({ value: String(message.value), headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])) }) })
    await waitFor(() => dlqRecords.length >= 2, { timeoutMs: 30_000 })
    await reader.disconnect()
    const flakyRecord = dlqRecords.find((r) => JSON.parse(r.value).i === 1)!
    expect(flakyRecord.headers).toMatchObject({ 'wal-dlq-target': 'api', 'wal-dlq-code': 'HTTP_503', 'wal-dlq-error-class': 'retryable', 'wal-attempts': '3' })
    expect(JSON.parse(flakyRecord.headers['wal-failures']!)).toHaveLength(3)

    const show = await wal.run(['dlq', 'show', String(entries.find((e) => e.key === 'flaky')!.seq), '-n', 'orders', '--json'])
    expect(show.code).toBe(0)
    server.always('flaky', 200)
    const replay = JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--error-class', 'retryable', '--json'])).stdout) as { replayed: number }
    expect(replay.replayed).toBe(1)
    expect((JSON.parse((await wal.run(['dlq', 'replay', '-n', 'orders', '--error-class', 'retryable', '--json'])).stdout) as { replayed: number }).replayed).toBe(0)
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(server.received.filter((r) => r.key === 'flaky').at(-1)!.status).toBe(200)
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ key: string }> }).entries.map((e) => e.key)).toEqual(['bad'])

    const id = flakyRecord.headers['wal-id']!
    const explained = await wal.run(['explain', id, '--json'])
    expect(explained.code).toBe(0)
    const report = JSON.parse(explained.stdout) as { writes: Array<{ replay: number }>; targets: Array<{ status: string; events: Array<{ event: string; attempt: number }> }> }
    expect(report.writes.map((w) => w.replay)).toEqual([0, 1])
    expect(report.targets[0]!.events.map((e) => [e.event, e.attempt])).toEqual([
      ['failed', 1],
      ['failed', 2],
      ['dead-lettered', 3],
    ])
    expect(report.targets[0]!.status).toBe('applied')

    const purge = await wal.run(['dlq', 'purge', '-n', 'orders', '--yes', '--json'])
    expect(purge.code).toBe(0)
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
  })

  it('holds a delayed mutation in the schedule topic across a restart, without holding up other keys', async () => {
    await namespace({ targets: { api: { type: 'http', url: server.url } } })
    // An hour's delay: however slow the machine, the first consumer runs long before it is due.
    await wal.run(['produce', '-n', 'orders', '-k', 'later', '-p', '{"i":1}', '--delay', '1h'])
    await wal.run(['produce', '-n', 'orders', '-k', 'later', '-p', '{"i":2}'])
    await wal.run(['produce', '-n', 'orders', '-k', 'now', '-p', '{"i":3}'])
    // The first consumer schedules the delayed one (and the one queued behind it), then stops.
    const first = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(JSON.parse(first.stdout).targets[0]).toMatchObject({ applied: 1, scheduled: 2 })
    expect(server.received.map((r) => r.key)).toEqual(['now'])
    const show = JSON.parse((await wal.run(['ns', 'show', 'orders', '--json'])).stdout) as { consumers: Array<{ scheduled: number }> }
    expect(show.consumers[0]!.scheduled).toBe(2)
    // A new consumer, an hour later by its clock, finds them in the schedule topic and delivers them in order.
    const child = wal.spawn(['consume', '-n', 'orders'], { env: { WAL_CLOCK_OFFSET: '1h' } })
    try {
      await waitFor(() => server.received.length >= 3, { timeoutMs: 60_000 })
    } finally {
      child.kill('SIGTERM')
    }
    expect(server.received.map((r) => [r.key, JSON.parse(r.body).i])).toEqual([
      ['now', 3],
      ['later', 1],
      ['later', 2],
    ])
  })

  it('shares partitions through the consumer group: static shards and auto shards, never one partition twice', async () => {
    await namespace({ partitions: 4 })
    const input = Array.from({ length: 200 }, (_, i) => ({ key: `k${i % 20}`, payload: { op: 'put', table: 't', key: { id: `k${i % 20}` }, item: { id: `k${i % 20}`, v: i } } }))
    await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })
    const [a, b] = await Promise.all([wal.run(['consume', '-n', 'orders', '--shard', '0/2', '--until-idle', '--json']), wal.run(['consume', '-n', 'orders', '--shard', '1/2', '--until-idle', '--json'])])
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    expect(JSON.parse(a.stdout).targets[0].partitions).toEqual([0, 2])
    expect(JSON.parse(b.stdout).targets[0].partitions).toEqual([1, 3])
    expect(JSON.parse(a.stdout).targets[0].applied + JSON.parse(b.stdout).targets[0].applied).toBe(200)
    const items = kvItems(wal.stateDir, 'orders')
    expect(items).toHaveLength(20)
    for (const item of items) {
      const { id, v } = JSON.parse(item.item!) as { id: string; v: number }
      expect(v).toBe(180 + Number(id.slice(1)))
    }
  })

  it('runs the other DLQ commands on Kafka: stats, export, dry-run, the loop guard, replay into another namespace, audit', async () => {
    await namespace({ extra: { quarantine: {} } })
    const junk = Array.from({ length: 4 }, (_, i) => ({ key: `junk-${i}`, payload: { not: 'an operation', i }, headers: { batch: i % 2 === 0 ? 'even' : 'odd' } }))
    await wal.run(['produce', '-n', 'orders'], { input: ndjson(junk) })
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    const dlq = async (...args: string[]) => JSON.parse((await wal.run(['dlq', ...args, '-n', 'orders', '--json'])).stdout) as Record<string, unknown>
    expect(await dlq('stats')).toMatchObject({ total: 4, groups: [{ target: 'kv', errorClass: 'fatal', count: 4 }] })

    const exported = jsonLines<Envelope>((await wal.run(['dlq', 'export', '-n', 'orders'])).stdout)
    expect(exported.map((e) => e.key).sort()).toEqual(['junk-0', 'junk-1', 'junk-2', 'junk-3'])
    expect(exported[0]!.failures).toEqual([expect.objectContaining({ target: 'kv', errorClass: 'fatal', attempt: 1 })])

    const before = (await wal.run(['tail', '-n', 'orders', '--json'])).stdout
    expect(await dlq('replay', '--dry-run', '--where', 'headers.batch == "even"')).toMatchObject({ dryRun: true, replayed: 2 })
    expect((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).toBe(before)

    // The loop guard: junk-0 comes back to the DLQ each time; after 1 replay it is parked.
    expect(await dlq('replay', '--max-replays', '1', '--key', 'junk-0')).toMatchObject({ replayed: 1, parked: 0 })
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(await dlq('replay', '--max-replays', '1', '--key', 'junk-0')).toMatchObject({ replayed: 0, parked: 1 })
    const listed = (await dlq('ls')).entries as Array<{ key: string; parked: boolean; replays: number }>
    expect(listed.find((e) => e.key === 'junk-0')).toMatchObject({ parked: true, replays: 1 })

    expect(await dlq('replay', '--to-namespace', 'quarantine', '--where', 'headers.batch == "odd"')).toMatchObject({ replayed: 2 })
    const moved = jsonLines<Envelope>((await wal.run(['tail', '-n', 'quarantine', '--json'])).stdout)
    expect(moved.map((e) => e.key).sort()).toEqual(['junk-1', 'junk-3'])
    const audit = (await dlq('audit')).audit as Array<{ action: string }>
    expect(audit.map((a) => a.action)).toEqual(['replay', 'replay', 'replay'])
  })
})
