// FIFO SQS namespaces: a key's mutations reach the queue, and the targets, in the order they were
// produced, even though different keys are sent side by side; --until-idle leaves nothing behind.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer } from '../helpers/http-target-server.js'
import { deleteQueues, queueUrl, sqsNamespace, testSqs } from '../helpers/sqs-namespace.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const prefixes: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  wal.cleanup()
  await deleteQueues(prefixes.splice(0))
})

interface Summary {
  targets: Array<{ target: string; applied: number; deadLettered: number; lag: number }>
}

/** More runs of the ordering tests (e.g. WAL_TEST_FIFO_RUNS=5) where there is time for them. */
const RUNS = Math.max(1, Number(process.env.WAL_TEST_FIFO_RUNS ?? 1))

async function produceAndConsume(keys: number, perKey: number): Promise<void> {
  const out = join(wal.dir, 'applied.ndjson')
  const queue = await sqsNamespace(wal, { fifo: true, shards: 2, targets: { out: { type: 'file', path: out } } })
  prefixes.push(queue)
  // Interleaved, as a stream of many keys arrives: k0 0, k1 0, …, k0 1, …
  const input = Array.from({ length: keys * perKey }, (_, n) => ({ key: `k${n % keys}`, payload: { i: Math.floor(n / keys) } }))
  const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(input) })
  expect(produced.code).toBe(0)
  expect(jsonLines(produced.stdout).filter((a) => a.durable === true)).toHaveLength(input.length)

  const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
  expect(consumed.code).toBe(0)
  expect((JSON.parse(consumed.stdout) as Summary).targets[0]).toMatchObject({ applied: input.length, deadLettered: 0, lag: 0 })
  // The file target appends in the order applied: per key, exactly the order produced.
  const applied = jsonLines<{ key: string; payload: { i: number } }>(readFileSync(out, 'utf8'))
  for (let k = 0; k < keys; k++) {
    expect(applied.filter((e) => e.key === `k${k}`).map((e) => e.payload.i)).toEqual(Array.from({ length: perKey }, (_, i) => i))
  }
  // Nothing left in the queues.
  for (const shard of [0, 1]) {
    const left = await testSqs.send(new ReceiveMessageCommand({ QueueUrl: await queueUrl(`${queue}-${shard}.fifo`), WaitTimeSeconds: 0, MaxNumberOfMessages: 10 }))
    expect(left.Messages ?? []).toEqual([])
  }
}

describe('a FIFO SQS namespace', () => {
  for (let run = 1; run <= RUNS; run++) {
    it(`receives and applies one key's 1,000 mutations, produced in one call, in exact order; --until-idle exits with lag 0 (run ${run})`, async () => {
      await produceAndConsume(1, 1000)
    }, 300_000)

    it(`receives and applies 20 keys × 500 mutations, produced in one call, each key in exact order (run ${run})`, async () => {
      await produceAndConsume(20, 500)
    }, 300_000)
  }
})

describe('the DLQ of a FIFO SQS namespace', () => {
  it('lists, exports and purges every dead letter of one key, also beyond one receive (10)', async () => {
    const queue = await sqsNamespace(wal, { fifo: true, shards: 1, targets: { store: { type: 'kv' } } })
    prefixes.push(queue)
    // Not operations: the kv target dead-letters each at once (fatal).
    const input = Array.from({ length: 25 }, (_, i) => ({ key: 'same-key', payload: { notAnOperation: i } }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code, consumed.stderr).toBe(8)
    expect((JSON.parse(consumed.stdout) as Summary).targets[0]).toMatchObject({ deadLettered: 25, lag: 0 })

    const listed = await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])
    expect(listed.code, listed.stderr).toBe(0)
    expect((JSON.parse(listed.stdout) as { entries: unknown[] }).entries).toHaveLength(25)
    const exported = await wal.run(['dlq', 'export', '-n', 'orders'])
    expect(jsonLines<{ payload: { notAnOperation: number } }>(exported.stdout).map((e) => e.payload.notAnOperation).sort((a, b) => a - b)).toEqual(input.map((_, i) => i))
    const purged = await wal.run(['dlq', 'purge', '-n', 'orders', '--yes'])
    expect(purged.code, purged.stderr).toBe(0)
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toHaveLength(0)
  }, 120_000)
})

describe('retries on a FIFO SQS namespace', () => {
  it("count a message's tries, not the receives that only put it back behind an earlier one of its key, so those never spend its attempts", async () => {
    const server = await startTargetServer()
    try {
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url } },
        retry: { maxAttempts: 3, initialBackoffMs: 1000, multiplier: 1, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 10 },
      })
      prefixes.push(queue)
      // The first of the key fails twice (applied on its third and last attempt); those received with
      // it wait behind it each time.
      server.failFirst('k', 2)
      const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(Array.from({ length: 6 }, (_, i) => ({ key: 'k', payload: { i } }))) })
      expect(produced.code, produced.stderr).toBe(0)
      const ids = jsonLines<{ id: string }>(produced.stdout).map((a) => a.id)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(consumed.code, consumed.stderr).toBe(0)
      expect((JSON.parse(consumed.stdout) as Summary).targets[0]).toMatchObject({ applied: 6, deadLettered: 0 })
      const attempts = ids.map((id) => server.received.filter((r) => r.idempotencyKey === id).map((r) => r.attempt))
      expect(attempts).toEqual([[1, 2, 3], [1], [1], [1], [1], [1]])
    } finally {
      await server.close()
    }
  })

  it("let each of a key's messages use its own retry.maxAttempts, however often the earlier ones retried: SQS's redrive (maxReceiveCount) moves none of them, and all are applied in order", async () => {
    const server = await startTargetServer()
    try {
      // maxReceiveCount is the default, maxAttempts + 10 = 13: far fewer than the 2 retries of each of
      // the 14 messages ahead of the last one of the key.
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url } },
        retry: { maxAttempts: 3, initialBackoffMs: 300, multiplier: 1, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 10 },
      })
      prefixes.push(queue)
      server.failEachFirst('k', 2)
      const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(Array.from({ length: 15 }, (_, i) => ({ key: 'k', payload: { i } }))) })
      expect(produced.code, produced.stderr).toBe(0)
      const ids = jsonLines<{ id: string }>(produced.stdout).map((a) => a.id)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(consumed.code, consumed.stderr).toBe(0)
      expect((JSON.parse(consumed.stdout) as Summary).targets[0]).toMatchObject({ applied: 15, deadLettered: 0, lag: 0 })
      const applied = server.received.filter((r) => r.status === 200).map((r) => (JSON.parse(r.body) as { i: number }).i)
      expect(applied).toEqual(Array.from({ length: 15 }, (_, i) => i))
      // Every request in order: a message's three tries, then the next message's.
      expect(server.received.map((r) => [ids.indexOf(r.idempotencyKey), r.attempt])).toEqual(ids.flatMap((_, n) => [1, 2, 3].map((a) => [n, a])))
      expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
    } finally {
      await server.close()
    }
  }, 120_000)

  it('on SIGTERM puts back at once the messages of a key held for a retry, without counting an attempt; the next consumer applies them in order', async () => {
    const server = await startTargetServer()
    try {
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url } },
        retry: { maxAttempts: 5, initialBackoffMs: 600_000, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 30 },
      })
      prefixes.push(queue)
      server.failFirst('k', 1)
      const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(Array.from({ length: 5 }, (_, i) => ({ key: 'k', payload: { i } }))) })
      expect(produced.code, produced.stderr).toBe(0)
      const ids = jsonLines<{ id: string }>(produced.stdout).map((a) => a.id)
      const child = wal.spawn(['consume', '-n', 'orders', '--json'])
      let out = ''
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      child.stderr!.resume()
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
      await waitFor(() => server.received.length >= 1, { timeoutMs: 30_000 })
      await new Promise((resolve) => setTimeout(resolve, 500))
      child.kill('SIGTERM')
      expect(await closed).toBe(0)
      expect((JSON.parse(out) as Summary).targets[0]).toMatchObject({ applied: 0, deadLettered: 0 })
      // Visible again now, not after the 10-minute backoff nor the 30 s visibility timeout.
      const rest = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(rest.code, rest.stderr).toBe(0)
      expect((JSON.parse(rest.stdout) as Summary).targets[0]).toMatchObject({ applied: 5, deadLettered: 0, lag: 0 })
      expect(server.received.map((r) => (JSON.parse(r.body) as { i: number }).i)).toEqual([0, 0, 1, 2, 3, 4])
      // The stop spent no attempt: the first message's second try is attempt 2.
      expect(server.received.filter((r) => r.idempotencyKey === ids[0]).map((r) => r.attempt)).toEqual([1, 2])
    } finally {
      await server.close()
    }
  }, 120_000)

  it('keeps a key held for a retry longer than the visibility timeout hidden: a second consumer of the queue gets none of it, and each is applied once, in order', async () => {
    const server = await startTargetServer()
    try {
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url } },
        retry: { maxAttempts: 3, initialBackoffMs: 12_000, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 5 },
      })
      prefixes.push(queue)
      server.failFirst('k', 1)
      const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(Array.from({ length: 5 }, (_, i) => ({ key: 'k', payload: { i } }))) })
      expect(produced.code, produced.stderr).toBe(0)
      const ids = jsonLines<{ id: string }>(produced.stdout).map((a) => a.id)
      const first = wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      await waitFor(() => server.received.length >= 1, { timeoutMs: 30_000 })
      const second = wal.spawn(['consume', '-n', 'orders', '--json'])
      let out = ''
      second.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      second.stderr!.resume()
      const closed = new Promise<number | null>((resolve) => second.on('close', resolve))
      const done = await first
      second.kill('SIGTERM')
      expect(await closed).toBe(0)
      expect(done.code, done.stderr).toBe(0)
      expect((JSON.parse(done.stdout) as Summary).targets[0]).toMatchObject({ applied: 5, deadLettered: 0 })
      expect((JSON.parse(out) as Summary).targets[0]).toMatchObject({ applied: 0, retried: 0 })
      expect(server.received.map((r) => [ids.indexOf(r.idempotencyKey), r.attempt])).toEqual([[0, 1], [0, 2], [1, 1], [2, 1], [3, 1], [4, 1]])
    } finally {
      await server.close()
    }
  }, 120_000)

  it('with several targets, tries again in hand only the target that failed: the one that applied a held message does not apply it twice', async () => {
    const server = await startTargetServer()
    try {
      const out = join(wal.dir, 'applied.ndjson')
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url }, out: { type: 'file', path: out } },
        retry: { maxAttempts: 3, initialBackoffMs: 300, multiplier: 1, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 10 },
      })
      prefixes.push(queue)
      server.failEachFirst('k', 1)
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 4 }, (_, i) => ({ key: 'k', payload: { i } }))) })).code).toBe(0)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(consumed.code, consumed.stderr).toBe(0)
      const targets = (JSON.parse(consumed.stdout) as { targets: Array<{ target: string; applied: number; retried: number; deadLettered: number }> }).targets
      expect(targets.map((t) => [t.target, t.applied, t.retried, t.deadLettered])).toEqual([
        ['api', 4, 4, 0],
        ['out', 4, 0, 0],
      ])
      expect(jsonLines<{ payload: { i: number } }>(readFileSync(out, 'utf8')).map((e) => e.payload.i)).toEqual([0, 1, 2, 3])
      expect(server.received.map((r) => [(JSON.parse(r.body) as { i: number }).i, r.attempt])).toEqual([0, 1, 2, 3].flatMap((i) => [[i, 1], [i, 2]]))
    } finally {
      await server.close()
    }
  }, 120_000)

  it("holds a transaction's marker in hand for a part's retry and applies the parts once each, in sequence order", async () => {
    const server = await startTargetServer()
    try {
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url } },
        retry: { maxAttempts: 3, initialBackoffMs: 300, multiplier: 1, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 10 },
      })
      prefixes.push(queue)
      server.failFirst('p1', 2)
      const produced = await wal.run(['produce', '-n', 'orders', '--txn', '--json'], { input: ndjson([0, 1, 2].map((i) => ({ key: `p${i}`, payload: { i } }))) })
      expect(produced.code, produced.stderr).toBe(0)
      expect(jsonLines(produced.stdout).at(-1)).toMatchObject({ commit: true, parts: 3 })
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(consumed.code, consumed.stderr).toBe(0)
      expect((JSON.parse(consumed.stdout) as { targets: Array<Record<string, number>> }).targets[0]).toMatchObject({ txnApplied: 1, retried: 2, deadLettered: 0, lag: 0 })
      expect(server.received.map((r) => [r.key, r.status])).toEqual([
        ['p0', 200],
        ['p1', 503],
        ['p1', 503],
        ['p1', 200],
        ['p2', 200],
      ])
      expect(server.received.filter((r) => r.key === 'p1').map((r) => r.attempt)).toEqual([1, 2, 3])
    } finally {
      await server.close()
    }
  }, 120_000)

  it('--until-idle gives up on a key held for a long retry after --idle-timeout (exit 5) and puts its messages back at once, none dead-lettered', async () => {
    const server = await startTargetServer()
    try {
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url } },
        retry: { maxAttempts: 5, initialBackoffMs: 600_000, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 30 },
      })
      prefixes.push(queue)
      server.always('k', 503)
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 3 }, (_, i) => ({ key: 'k', payload: { i } }))) })).code).toBe(0)
      const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--idle-timeout', '2s'])
      expect(result.code, result.stderr).toBe(5)
      expect(result.stderr).toMatch(/target "api" made no progress for 2s \(--idle-timeout\)/)
      expect(server.received).toHaveLength(1)
      expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
      // Visible again now, not after the 10-minute backoff nor the 30 s visibility timeout.
      const left = await testSqs.send(new ReceiveMessageCommand({ QueueUrl: await queueUrl(`${queue}.fifo`), WaitTimeSeconds: 0, MaxNumberOfMessages: 10 }))
      expect((left.Messages ?? []).map((m) => (JSON.parse(m.Body!) as { payload: { i: number } }).payload.i)).toEqual([0, 1, 2])
    } finally {
      await server.close()
    }
  }, 60_000)

  it('keeps applying other keys while whole batches of four keys are held for a long retry (held messages do not stop the receives)', async () => {
    const server = await startTargetServer()
    try {
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url } },
        retry: { maxAttempts: 5, initialBackoffMs: 600_000, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 30 },
      })
      prefixes.push(queue)
      const held = ['a', 'b', 'c', 'd']
      for (const key of held) server.always(key, 503)
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(held.flatMap((key) => Array.from({ length: 10 }, (_, i) => ({ key, payload: { i } })))) })).code).toBe(0)
      const child = wal.spawn(['consume', '-n', 'orders', '--concurrency', '4', '--json'])
      let out = ''
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      child.stderr!.resume()
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
      // 40 messages held: twice the 20 in hand that --concurrency 4 allows, were they counted.
      await waitFor(() => server.received.length === 4, { timeoutMs: 60_000, intervalMs: 100 })
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 20 }, (_, i) => ({ key: `o${i}`, payload: { i } }))) })).code).toBe(0)
      await waitFor(() => server.received.filter((r) => r.status === 200).length === 20, { timeoutMs: 90_000, intervalMs: 100 })
      child.kill('SIGTERM')
      expect(await closed).toBe(0)
      expect((JSON.parse(out) as Summary).targets[0]).toMatchObject({ applied: 20, deadLettered: 0 })
      // The held keys were tried once each (their first message), then held.
      expect(server.received.filter((r) => r.status !== 200).map((r) => r.key).sort()).toEqual(held)
    } finally {
      await server.close()
    }
  }, 180_000)

  it("never applies a key's later message ahead of an earlier one that went back for a retry, also when the retry's wait is over before the later one's turn comes", async () => {
    const server = await startTargetServer()
    try {
      const queue = await sqsNamespace(wal, {
        fifo: true,
        targets: { api: { type: 'http', url: server.url } },
        retry: { maxAttempts: 5, initialBackoffMs: 1000, multiplier: 1, jitter: 0 },
        settings: { visibilityTimeoutSeconds: 10 },
      })
      prefixes.push(queue)
      // One apply at a time, each slower than the retry's 1 s wait: a's first fails, b's run meanwhile.
      server.failFirst('a', 1)
      server.slow(1500)
      const input = [0, 1, 2].flatMap((i) => [{ key: 'a', payload: { i } }, { key: 'b', payload: { i } }])
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--concurrency', '1', '--json'])
      expect(consumed.code, consumed.stderr).toBe(0)
      expect((JSON.parse(consumed.stdout) as Summary).targets[0]).toMatchObject({ applied: 6, deadLettered: 0 })
      const requests = (key: string): number[] => server.received.filter((r) => r.key === key).map((r) => (JSON.parse(r.body) as { i: number }).i)
      expect(requests('a')).toEqual([0, 0, 1, 2])
      expect(requests('b')).toEqual([0, 1, 2])
    } finally {
      await server.close()
    }
  })
})
