/**
 * A consumer counts a dead letter (its stats, the daemon's status and metrics) once the commit that
 * writes the DLQ entry is durable: a commit another consumer fenced off wrote nothing, so what it held
 * is not counted, and the mutation is dead-lettered (and counted) once, by whoever commits it.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import type { TargetSettings } from '../../src/lib/config/schema.js'
import { decodeEnvelope, type Mutation } from '../../src/lib/envelope/envelope.js'
import type { ConsumerStore } from '../../src/lib/log/backend.js'
import { EmbeddedLog } from '../../src/lib/log/embedded/embedded-log.js'
import { TargetConsumer } from '../../src/lib/pipeline/target-consumer.js'
import { TargetError, type Target } from '../../src/lib/targets/target.js'

let dir: string
let log: EmbeddedLog
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wal-dead-letter-count-'))
  log = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 1, create: true, writerThread: false })
})
afterEach(async () => {
  await log.close()
  rmSync(dir, { recursive: true, force: true })
})

const settings: TargetSettings = { type: 'kv', path: ':memory:', name: 'api', retry: { maxAttempts: 1, initialBackoffMs: 10, maxBackoffMs: 10, multiplier: 2, jitter: 0 }, ratePerSec: null }

/** Refuses every mutation as fatal: each is dead-lettered on its first attempt. */
const refusing: Target = {
  name: 'api',
  apply: async () => {
    throw new TargetError('refused', { errorClass: 'fatal', code: 'REFUSED' })
  },
  close: async () => undefined,
}

describe('dead letters are counted once written', () => {
  it('a commit fenced off (rolled back) is not counted; the one that lands is, once', async () => {
    const mutation: Mutation = decodeEnvelope({ key: 'k', payload: { n: 1 } }, { namespace: 'ns', nowMs: Date.now() })
    await log.append([mutation])
    const real = await log.consumerStore('api')
    // The first commit finds its partition taken by another consumer meanwhile: nothing of it is written.
    let fenced = 0
    const fencing = new Proxy(real, {
      get(target, property, receiver) {
        if (property === 'commit') {
          return async (...args: Parameters<ConsumerStore['commit']>) => {
            if (fenced === 0 && args[1].deadLetters.length > 0) {
              fenced++
              return { lost: [...args[1].epochs.keys()] }
            }
            return target.commit(...args)
          }
        }
        const value = Reflect.get(target, property, receiver) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    }) as ConsumerStore
    const deadLettered: string[] = []
    const run = (store: ConsumerStore) =>
      new TargetConsumer({
        log,
        store,
        target: refusing,
        settings,
        namespaceTargets: () => [settings.name],
        owner: 'test/1',
        shard: 'auto',
        concurrency: 1,
        limiters: [],
        now: Date.now,
        untilIdle: true,
        idleTimeoutMs: 30_000,
        stop: new AbortController().signal,
        abort: new AbortController().signal,
        leaseTtlMs: 1000,
        commitIntervalMs: 10,
        pollIntervalMs: 10,
        observer: { applied: () => undefined, retried: () => undefined, deadLettered: (m) => deadLettered.push(m.id) },
      }).run()
    const dlq = await log.deadLetterQueue()

    // The fenced commit wrote nothing, so it counts nothing. The same consumer may then take the partition
    // again (the store still has it as the owner) and dead-letter the mutation for good before it goes idle;
    // otherwise the next consumer does. Either way it is counted once and in the DLQ once.
    const first = await run(fencing)
    expect(fenced).toBe(1)
    expect(deadLettered).toHaveLength(first.deadLettered)
    const second = await run(real)
    expect(first.deadLettered + second.deadLettered).toBe(1)
    expect(deadLettered).toEqual([mutation.id])
    expect((await dlq.entries({})).map((e) => e.mutation.id)).toEqual([mutation.id])
    await dlq.close()
    await real.close()
  })
})
