import { describe, expect, it } from 'vitest'

import { resolveConfig, validateConfig } from '../../src/lib/config/load.js'
import { BackendUnavailableError, DurabilityUnknownError, InvalidRecordError, type WalError } from '../../src/lib/errors.js'
import { durableAnswer, parseProduceBody, partialAnswer, produceAnswer } from '../../src/lib/daemon/http-produce.js'
import { diffConsumers, planConsumers, restartOnlyChanges } from '../../src/lib/daemon/plan.js'
import { shardQueues } from '../../src/lib/log/sqs/queues.js'

const config = (raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => resolveConfig(validateConfig(raw, '/etc/wal/.walrc', env), '/etc/wal/.walrc', { WAL_HOME: '/var/wal', ...env })

const base = {
  namespaces: {
    orders: { partitions: 4, targets: { store: { type: 'kv' }, api: { type: 'http', url: 'http://127.0.0.1:1/x' } } },
    emails: { targets: { outbox: { type: 'file', path: '/tmp/out.ndjson' } } },
  },
}

describe('the daemon plan', () => {
  it('runs one consumer per target of every declared namespace, with the daemon settings', () => {
    const plan = planConsumers(config({ ...base, daemon: { shard: '1/2', concurrency: 4 } }))
    expect([...plan.keys()]).toEqual(['emails/outbox', 'orders/store', 'orders/api'])
    expect(plan.get('orders/api')).toMatchObject({ shard: '1/2', concurrency: 4, leaseTtlMs: 10_000 })
  })

  it('applies as many at once as each target asks, unless the daemon config sets it', () => {
    const withCassandra = {
      clusters: { cassandra: { main: { contactPoints: ['127.0.0.1'], localDataCenter: 'dc1', keyspace: 'shop' } } },
      namespaces: { orders: { targets: { db: { type: 'cassandra', cluster: 'main', concurrency: 48 }, store: { type: 'kv' } } } },
    }
    const plan = planConsumers(config(withCassandra))
    expect([plan.get('orders/db')!.concurrency, plan.get('orders/store')!.concurrency]).toEqual([48, 16])
    const set = planConsumers(config({ ...withCassandra, daemon: { concurrency: 8 } }))
    expect([set.get('orders/db')!.concurrency, set.get('orders/store')!.concurrency]).toEqual([8, 8])
  })

  it('refuses a file target on stdout, where the daemon writes its log (exit 3), naming it', () => {
    const raw = { namespaces: { ...base.namespaces, logs: { targets: { screen: { type: 'file', path: '-' } } } } }
    expect(() => planConsumers(config(raw))).toThrow(expect.objectContaining({ code: 'WAL_DAEMON_STDOUT_TARGET', exitCode: 3, message: expect.stringContaining('target "screen" of namespace "logs" writes to stdout') }))
  })

  it('consumes namespaces created on demand only when the config lets them be created', () => {
    expect([...planConsumers(config({}), ['default', 'logs']).keys()]).toEqual(['default/kv', 'logs/kv'])
    expect([...planConsumers(config(base), ['stray']).keys()]).not.toContain('stray/kv')
  })

  it('restarts only the consumers whose settings changed, starts the added and stops the removed', () => {
    const before = planConsumers(config(base))
    const after = planConsumers(
      config({
        namespaces: {
          orders: { partitions: 4, targets: { store: { type: 'kv' }, api: { type: 'http', url: 'http://127.0.0.1:1/x', timeoutMs: 500 } } },
          audit: { targets: { log: { type: 'kv' } } },
        },
      }),
    )
    const diff = diffConsumers(before, after)
    expect(diff.added.map((s) => s.key)).toEqual(['audit/log'])
    expect(diff.removed).toEqual(['emails/outbox'])
    expect(diff.changed.map((s) => s.key)).toEqual(['orders/api'])
    expect(diff.unchanged).toEqual(['orders/store'])
  })

  it("restarts every target of a namespace whose log or shared rate changes", () => {
    const before = planConsumers(config(base))
    const more = { ...base, namespaces: { ...base.namespaces, orders: { ...base.namespaces.orders, rate: '10/s' } } }
    expect(diffConsumers(before, planConsumers(config(more))).changed.map((s) => s.key).sort()).toEqual(['orders/api', 'orders/store'])
  })

  describe('on SQS namespaces', () => {
    const sqs = (jobs: Record<string, unknown>, shard = 'auto') =>
      config({ ...base, clusters: { sqs: { main: { region: 'us-east-1' } } }, namespaces: { ...base.namespaces, jobs: { backend: 'sqs', cluster: 'main', shards: 4, ...jobs } }, daemon: { shard } })
    const targets = { api: { type: 'http', url: 'http://127.0.0.1:1/x' }, store: { type: 'kv' } }

    it('runs one consumer per SQS namespace for all its targets, beside one per target elsewhere', () => {
      const plan = planConsumers(sqs({ targets }))
      expect([...plan.keys()]).toEqual(['emails/outbox', 'jobs/*', 'orders/store', 'orders/api'])
      expect(plan.get('jobs/*')!.targets.map((t) => t.name)).toEqual(['api', 'store'])
      expect(plan.get('orders/api')!.targets.map((t) => t.name)).toEqual(['api'])
    })

    it("restarts an SQS namespace's consumer when any of its targets or its queues change, and leaves it alone otherwise", () => {
      const before = planConsumers(sqs({ targets }))
      const changedTarget = planConsumers(sqs({ targets: { ...targets, store: { type: 'kv', retry: { maxAttempts: 2 } } } }))
      expect(diffConsumers(before, changedTarget)).toMatchObject({ changed: [expect.objectContaining({ key: 'jobs/*' })], added: [], removed: [] })
      const addedTarget = planConsumers(sqs({ targets: { ...targets, out: { type: 'file', path: '/tmp/o' } } }))
      expect(diffConsumers(before, addedTarget).changed.map((s) => s.key)).toEqual(['jobs/*'])
      const otherQueues = planConsumers(sqs({ targets, visibilityTimeoutSeconds: 60 }))
      expect(diffConsumers(before, otherQueues).changed.map((s) => s.key)).toEqual(['jobs/*'])
      expect(diffConsumers(before, planConsumers(sqs({ targets }))).changed).toEqual([])
    })

    it('takes every shard queue for auto, and the queues i with i % N == I for I/N', () => {
      expect(shardQueues('auto', 4)).toEqual([0, 1, 2, 3])
      expect(shardQueues({ index: 1, count: 2 }, 5)).toEqual([1, 3])
      expect(shardQueues({ index: 0, count: 3 }, 5)).toEqual([0, 3])
    })
  })

  it('names the settings a reload cannot change without a restart', () => {
    expect(restartOnlyChanges(config(base), config({ ...base, daemon: { port: 9000 } }))).toEqual(['daemon.port'])
    expect(restartOnlyChanges(config(base), config({ ...base, daemon: { maxInFlight: 5 } }))).toEqual([])
    expect(restartOnlyChanges(config(base), config({ ...base, daemon: { tls: { cert: 'c.pem', key: 'k.pem' } } }))).toEqual(['daemon.tls'])
  })

  it('takes the bearer token from the config, else from WAL_DAEMON_TOKEN', () => {
    expect(config(base).daemon.token).toBeNull()
    expect(config(base, { WAL_DAEMON_TOKEN: 'from-the-environment' }).daemon.token).toBe('from-the-environment')
    expect(() => config({ daemon: { token: 'short' } })).toThrow(/daemon.token.*at least 16 characters/)
  })
})

describe('HTTP write bodies', () => {
  const cfg = config(base)
  it('reads one envelope, a JSON array, or NDJSON into mutations of the namespace in the path', () => {
    const one = parseProduceBody('{"key":"a","payload":1,"namespace":"other"}', 'application/json', 'orders', cfg, 1000)
    expect(one).toMatchObject({ ok: true, batch: false, mutations: [{ key: 'a', namespace: 'orders' }] })
    const many = parseProduceBody('[{"payload":1},{"payload":2}]', undefined, 'orders', cfg, 1000)
    expect(many).toMatchObject({ ok: true, batch: true })
    const nd = parseProduceBody('{"payload":1}\n\n{"payload":2}\n', 'application/x-ndjson', 'orders', cfg, 1000)
    expect(nd.ok && nd.mutations.length).toBe(2)
  })

  it('ignores a byte order mark at the start of the body, as wal produce does at the start of its input, and only there', () => {
    const json = parseProduceBody('\ufeff{"key":"a","payload":1}', 'application/json', 'orders', cfg, 1000)
    expect(json).toMatchObject({ ok: true, mutations: [{ key: 'a' }] })
    const nd = parseProduceBody('\ufeff{"key":"a","payload":1}\r\n\ufeff{"key":"b","payload":2}\r\n{"key":"c","payload":3}', 'application/x-ndjson', 'orders', cfg, 1000)
    expect(nd.ok && nd.mutations.map((m) => m.key)).toEqual(['a', 'c'])
    expect(nd.ok && nd.rejected.map((r) => [r.index, r.error.message])).toEqual([[1, expect.stringContaining('byte order mark')]])
  })

  it('rejects each bad mutation of a batch by index and keeps the good ones to be written', () => {
    const parsed = parseProduceBody('[{"payload":1},{"kye":1,"payload":2},{"payload":3,"target":"nope"},{"payload":4}]', undefined, 'orders', cfg, 1000)
    expect(parsed.ok).toBe(true)
    if (!parsed.ok) return
    expect(parsed.mutations.map((m) => m.payload)).toEqual([{ encoding: 'json', json: '1' }, { encoding: 'json', json: '4' }])
    expect(parsed.rejected.map((r) => r.index)).toEqual([1, 2])
    const answer = produceAnswer(parsed, [{ id: 'A', partition: 0, offset: 0, duplicate: false }, { id: 'B', partition: 1, offset: 0, duplicate: false }], 'orders')
    expect(answer.status).toBe(400)
    expect(answer.body.message).toMatch(/^2 of 4 mutations durable; 2 not \(first: index 1: .*kye.*\): fix those and send them again$/)
    expect(answer.body.results!.map((r) => [r.index, r.durable])).toEqual([[0, true], [1, false], [2, false], [3, true]])
  })

  it('refuses a body that is not JSON, or not UTF-8, as a whole', () => {
    const truncated = parseProduceBody('[{"payload":1},{"payload":', undefined, 'orders', cfg, 1000)
    expect(truncated).toMatchObject({ ok: false, answer: { status: 400 } })
    const bytes = parseProduceBody(Buffer.from([0x7b, 0x22, 0x70, 0xff, 0x7d]), undefined, 'orders', cfg, 1000)
    expect(bytes).toMatchObject({ ok: false, answer: { status: 400, body: { message: expect.stringMatching(/not valid UTF-8 \(byte 4\)/) } } })
  })

  it('refuses a batch whose envelopes are each fine but whose array is not JSON: missing or extra commas, text after it', () => {
    for (const body of [
      '[{"payload":1} {"payload":2}]',
      '[{"payload":1},,{"payload":2}]',
      '[{"payload":1},{"payload":2},]',
      '[,{"payload":1}]',
      '[{"payload":1},{"payload":2}] x',
      '[{"payload":1},{"payload":2}]]',
      '[{"payload":1} 2]',
      '{"payload":1} {"payload":2}',
    ]) {
      expect(parseProduceBody(body, undefined, 'orders', cfg, 1000), body).toMatchObject({ ok: false, answer: { status: 400, body: { message: expect.stringMatching(/^the body is not JSON: /) } } })
    }
    // Whitespace anywhere JSON allows it is fine; an item that is JSON but not an envelope rejects itself only.
    const spaced = parseProduceBody(' \n[ {"payload":1} ,\t{"payload":2}\r\n, 3 ] \n', undefined, 'orders', cfg, 1000)
    expect(spaced).toMatchObject({ ok: true, batch: true, count: 3, rejected: [{ index: 2 }] })
    expect(parseProduceBody('[]', undefined, 'orders', cfg, 1000)).toMatchObject({ ok: false, answer: { body: { message: 'the batch is empty' } } })
  })

  it('names an NDJSON line that is not UTF-8 by its line, and takes the others', () => {
    const body = Buffer.concat([Buffer.from('{"payload":1}\n{"payload":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n{"payload":3}\n')])
    const parsed = parseProduceBody(body, 'application/x-ndjson', 'orders', cfg, 1000)
    expect(parsed.ok && parsed.mutations.length).toBe(2)
    expect(parsed.ok && parsed.rejected[0]).toMatchObject({ index: 1, line: 2, error: { message: expect.stringMatching(/line 2 is not valid UTF-8 \(byte 13 of the line\)/) } })
  })

  it('answers durable with where each mutation landed, and counts duplicates', () => {
    const results = [
      { id: 'A', partition: 1, offset: 7, duplicate: false },
      { id: 'B', partition: 2, offset: 3, duplicate: true },
    ]
    expect(durableAnswer(results, 'orders', true).body).toMatchObject({ durable: true, message: '2 mutations durable (1 duplicate)', results: [{ index: 0, id: 'A' }, { index: 1, duplicate: true }] })
    expect(durableAnswer(results.slice(0, 1), 'orders', false).body).toEqual({ id: 'A', namespace: 'orders', partition: 1, offset: 7, durable: true, message: 'durable' })
  })

  describe('on SQS', () => {
    const sent = (id: string, error?: WalError) => ({ id, partition: 1, offset: -1, duplicate: false, queue: 'jobs-1', messageId: error ? undefined : `m-${id}`, error })
    const parsed = parseProduceBody('[{"key":"a","payload":1,"idempotencyKey":"k-a"},{"key":"b","payload":2},{"key":"c","payload":3}]', undefined, 'orders', cfg, 1000)
    const mutations = parsed.ok ? parsed.mutations : []

    it('acks with the queue and MessageId instead of an offset', () => {
      expect(durableAnswer([sent('A')], 'jobs', false).body).toEqual({ id: 'A', namespace: 'jobs', partition: 1, queue: 'jobs-1', messageId: 'm-A', durable: true, message: 'durable' })
    })

    it('answers each mutation of a batch SQS wrote in part, with the status of the worst outcome', () => {
      const refused = partialAnswer([sent('A'), sent('B', new InvalidRecordError('too large')), sent('C')], mutations, 'jobs', true)
      expect(refused.status).toBe(400)
      expect(refused.body).toMatchObject({ durable: false, message: '2 of 3 mutations durable; 1 not (first: index 1: too large): fix those and send them again' })
      expect(refused.body.results!.map((r) => r.durable)).toEqual([true, false, true])
      expect(refused.body.results![0]).toMatchObject({ queue: 'jobs-1', messageId: 'm-A' })

      const unavailable = partialAnswer([sent('A'), sent('B', new BackendUnavailableError('SQS refused')), sent('C', new InvalidRecordError('too large'))], mutations, 'jobs', true)
      expect(unavailable).toMatchObject({ status: 503, body: { durable: false } })

      const unknown = partialAnswer([sent('A', new DurabilityUnknownError('no answer')), sent('B', new BackendUnavailableError('x')), sent('C')], mutations, 'jobs', true)
      expect(unknown).toMatchObject({ status: 504, body: { durable: 'unknown' } })
      expect(unknown.body.results![0]).toMatchObject({ index: 0, durable: 'unknown', idempotencyKey: 'k-a' })
    })

    it('answers a single mutation SQS did not take with why', () => {
      const one = partialAnswer([sent('A', new DurabilityUnknownError('no answer'))], mutations.slice(0, 1), 'jobs', false)
      expect(one).toMatchObject({ status: 504, body: { durable: 'unknown', id: mutations[0]!.id, idempotencyKey: 'k-a' } })
      expect(one.body.message).toMatch(/^no answer: the write may or may not be in the log; send it again with the same idempotency key$/)
      expect(one.body).not.toHaveProperty('index')
    })
  })
})
