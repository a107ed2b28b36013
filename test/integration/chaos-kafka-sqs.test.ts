// wal's promise under a seeded nemesis (see test/helpers/chaos.ts) on Kafka and SQS (FIFO):
// WAL_CHAOS_SEED=<n> replays a run.
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'

import { chaosSeed, runChaos, type ChaosOptions } from '../helpers/chaos.js'
import { deleteTopics, kafkaNamespace } from '../helpers/kafka-namespace.js'
import { deleteQueues, sqsNamespace } from '../helpers/sqs-namespace.js'
import { makeSandbox, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
const queues: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())
afterAll(async () => {
  await deleteTopics(topics)
  await deleteQueues(queues)
})

const MAX_PAYLOAD = 64 * 1024

function targets(outPath: string): Record<string, unknown> {
  return { store: { type: 'kv' }, out: { type: 'file', path: outPath } }
}

function options(seed: number, outPath: string, more: Partial<ChaosOptions>): ChaosOptions {
  return {
    wal,
    seed,
    namespace: 'orders',
    kv: 'store',
    file: { name: 'out', path: outPath },
    leaseTtlMs: 6000,
    writers: 3,
    perWriter: 100,
    maxPayloadBytes: MAX_PAYLOAD,
    slots: [['--shard', 'auto'], ['--shard', 'auto']],
    steps: 8,
    embedded: false,
    log: (m) => console.log(m),
    ...more,
  }
}

describe('chaos', () => {
  it('on Kafka: keeps every acked mutation (applied in per-key order, unaltered, once in effect, or dead-lettered with a reason) while consumers are killed, frozen past their session and restarted', async () => {
    const seed = chaosSeed()
    console.log(`chaos seed ${seed} (replay: WAL_CHAOS_SEED=${seed})`)
    const outPath = join(wal.dir, 'out.ndjson')
    topics.push(
      await kafkaNamespace(wal, {
        partitions: 4,
        targets: targets(outPath),
        retry: { maxAttempts: 3, initialBackoffMs: 50, maxBackoffMs: 200 },
        settings: { maxPayloadBytes: MAX_PAYLOAD },
      }),
    )
    const result = await runChaos(options(seed, outPath, { slots: [['--shard', 'auto'], ['--shard', 'auto'], seed % 2 === 0 ? 'daemon' : ['--shard', '1/2']] }))
    expect(result.acks.filter((a) => a.durable === true).length, `seed ${seed}`).toBeGreaterThan(0)
    expect(result.problems.slice(0, 30), `seed ${seed}; ${result.actions.join('; ')}`).toEqual([])
  }, 300_000)

  it('on SQS FIFO: keeps every acked mutation (applied in per-key order, unaltered, once in effect, or dead-lettered with a reason) while consumers are killed, frozen past the visibility timeout and restarted', async () => {
    const seed = chaosSeed()
    console.log(`chaos seed ${seed} (replay: WAL_CHAOS_SEED=${seed})`)
    const outPath = join(wal.dir, 'out.ndjson')
    queues.push(
      await sqsNamespace(wal, {
        shards: 2,
        fifo: true,
        targets: targets(outPath),
        retry: { maxAttempts: 3, initialBackoffMs: 50, maxBackoffMs: 200 },
        settings: { maxPayloadBytes: MAX_PAYLOAD, visibilityTimeoutSeconds: 5 },
      }),
    )
    const result = await runChaos(options(seed, outPath, { pauseMs: 7000, slots: [[], ['--shard', '0/2'], seed % 2 === 0 ? 'daemon' : ['--shard', '1/2']] }))
    expect(result.acks.filter((a) => a.durable === true).length, `seed ${seed}`).toBeGreaterThan(0)
    expect(result.problems.slice(0, 30), `seed ${seed}; ${result.actions.join('; ')}`).toEqual([])
  }, 300_000)
})
