/**
 * A consumer applies a page of ready mutations to a target that takes batches in one call. A batch is
 * all or none: when it fails, each of its mutations is applied on its own, so a bad one retries, backs
 * off and is dead-lettered alone while every other lands once, in its key's order.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import type { TargetSettings } from '../../src/lib/config/schema.js'
import { decodeEnvelope, type Mutation } from '../../src/lib/envelope/envelope.js'
import { EmbeddedLog } from '../../src/lib/log/embedded/embedded-log.js'
import { TargetConsumer, type TargetObserver, type TargetStats } from '../../src/lib/pipeline/target-consumer.js'
import { FileTarget } from '../../src/lib/targets/file/file-target.js'
import { TargetError, type ApplyContext, type BatchContext, type Target } from '../../src/lib/targets/target.js'

let dir: string
let log: EmbeddedLog
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wal-batch-apply-'))
  log = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 4, create: true, writerThread: false })
})
afterEach(async () => {
  await log.close()
  rmSync(dir, { recursive: true, force: true })
})

const MAX_ATTEMPTS = 3
const settings: TargetSettings = {
  type: 'file',
  path: '',
  name: 'out',
  retry: { maxAttempts: MAX_ATTEMPTS, initialBackoffMs: 5, maxBackoffMs: 5, multiplier: 1, jitter: 0 },
  ratePerSec: null,
}

/**
 * The NDJSON target, refusing one mutation (retryably, as a remote store might refuse one row) the way a
 * target that applies batches whole does: a batch holding it fails and applies nothing.
 */
class RefusingOne implements Target {
  readonly name = 'out'
  readonly batchSizes: number[] = []
  readonly file: FileTarget

  constructor(
    path: string,
    private readonly refusedId: string,
  ) {
    this.file = new FileTarget({ name: 'out', path })
  }

  private refuse(): never {
    throw new TargetError('the store refuses this row', { errorClass: 'retryable', code: 'REFUSED' })
  }

  async apply(mutation: Mutation, _context: ApplyContext): Promise<void> {
    if (mutation.id === this.refusedId) this.refuse()
    return this.file.apply(mutation)
  }

  async applyBatch(mutations: readonly Mutation[], _context: BatchContext): Promise<void> {
    this.batchSizes.push(mutations.length)
    if (mutations.some((m) => m.id === this.refusedId)) this.refuse()
    return this.file.applyBatch(mutations)
  }

  flush(): Promise<void> {
    return this.file.flush()
  }

  close(): Promise<void> {
    return this.file.close()
  }
}

describe('batched applies', () => {
  it('one mutation the target refuses retries and is dead-lettered alone; every other lands once, in its key order', async () => {
    const mutations: Mutation[] = []
    for (let i = 0; i < 600; i++) mutations.push(decodeEnvelope({ key: `k${i % 7}`, payload: { i } }, { namespace: 'ns', nowMs: Date.now() }))
    await log.append(mutations)
    const bad = mutations[250]!
    const outPath = join(dir, 'out.ndjson')
    const target = new RefusingOne(outPath, bad.id)
    const store = await log.consumerStore('out')
    const deadLettered: string[] = []
    const stats = await consumeWith(store, target, { applied: () => undefined, retried: () => undefined, deadLettered: (m) => deadLettered.push(m.id) })
    await target.close()

    // The page went to the target in one call (not one per mutation), and failed there.
    expect(target.batchSizes[0]).toBeGreaterThan(1)
    expect(stats).toMatchObject({ applied: 599, retried: MAX_ATTEMPTS - 1, deadLettered: 1, lag: 0 })
    expect(deadLettered).toEqual([bad.id])

    const lines = readFileSync(outPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; key: string })
    const ids = lines.map((l) => l.id)
    expect(ids).toHaveLength(599)
    expect(new Set(ids)).toEqual(new Set(mutations.filter((m) => m !== bad).map((m) => m.id)))
    // Per key, in the order produced (ids grow with it).
    for (let k = 0; k < 7; k++) {
      const ofKey = lines.filter((l) => l.key === `k${k}`).map((l) => l.id)
      expect(ofKey).toEqual([...ofKey].sort())
    }

    const dlq = await log.deadLetterQueue()
    const [entry, ...others] = await dlq.entries({})
    expect(others).toEqual([])
    expect(entry!.mutation).toMatchObject({ id: bad.id, attempts: MAX_ATTEMPTS })
    expect(entry!.mutation.failures.map((f) => [f.attempt, f.code])).toEqual([
      [1, 'REFUSED'],
      [2, 'REFUSED'],
      [3, 'REFUSED'],
    ])
    await dlq.close()
    await store.close()
  })

  it('a key with a delayed mutation in the page keeps its order (the mutations after it wait for it), while the other keys of the page are applied in one call', async () => {
    const now = Date.now()
    const input: Array<{ key: string; payload: unknown; notBefore?: string }> = []
    for (let i = 0; i < 300; i++) input.push({ key: `k${i % 5}`, payload: { i } })
    // Key "late": ready, delayed, ready, ready.
    input.splice(40, 0, { key: 'late', payload: { late: 0 } })
    input.splice(80, 0, { key: 'late', payload: { late: 1 }, notBefore: new Date(now + 400).toISOString() })
    input.splice(120, 0, { key: 'late', payload: { late: 2 } })
    input.push({ key: 'late', payload: { late: 3 } })
    const mutations = input.map((e) => decodeEnvelope(e, { namespace: 'ns', nowMs: now }))
    await log.append(mutations)
    const outPath = join(dir, 'out.ndjson')
    const target = new RefusingOne(outPath, 'none')
    const store = await log.consumerStore('out')
    const first = await consumeWith(store, target)
    // --until-idle does not wait for a delay: the delayed one and the two after it wait in the schedule.
    expect(first).toMatchObject({ applied: 301, scheduled: 3, lag: 0 })
    const later = await consumeWith(store, target, undefined, () => Date.now() + 1000)
    expect(later).toMatchObject({ applied: 3, deadLettered: 0 })
    await target.close()
    // The other keys went in a batch; "late" one at a time.
    expect(target.batchSizes[0]).toBe(300)
    const lines = readFileSync(outPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { key: string; payload: { late?: number } })
    expect(lines.filter((l) => l.key === 'late').map((l) => l.payload.late)).toEqual([0, 1, 2, 3])
    expect(lines).toHaveLength(304)
    await store.close()
  })

  it('a clean page is applied in batches and committed: a second consumer finds nothing to do', async () => {
    const mutations: Mutation[] = []
    for (let i = 0; i < 2500; i++) mutations.push(decodeEnvelope({ key: `k${i % 50}`, payload: { i } }, { namespace: 'ns', nowMs: Date.now() }))
    await log.append(mutations)
    const outPath = join(dir, 'out.ndjson')
    const target = new RefusingOne(outPath, 'none')
    const store = await log.consumerStore('out')
    const first = await consumeWith(store, target)
    expect(first).toMatchObject({ applied: 2500, retried: 0, deadLettered: 0, lag: 0 })
    // Fewer calls than mutations: pages, not one apply each.
    expect(target.batchSizes.length).toBeLessThan(10)
    expect(target.batchSizes.reduce((a, b) => a + b, 0)).toBe(2500)
    const again = await consumeWith(store, target)
    expect(again).toMatchObject({ applied: 0, lag: 0 })
    await target.close()
    expect(readFileSync(outPath, 'utf8').trim().split('\n')).toHaveLength(2500)
    await store.close()
  })
})

async function consumeWith(store: Awaited<ReturnType<EmbeddedLog['consumerStore']>>, target: Target, observer?: TargetObserver, now: () => number = Date.now): Promise<TargetStats> {
  return new TargetConsumer({
    log,
    store,
    target,
    settings,
    namespaceTargets: () => ['out'],
    owner: 'test/1',
    shard: 'auto',
    concurrency: 16,
    limiters: [],
    now,
    untilIdle: true,
    idleTimeoutMs: 60_000,
    stop: new AbortController().signal,
    abort: new AbortController().signal,
    leaseTtlMs: 5000,
    commitIntervalMs: 20,
    pollIntervalMs: 10,
    ...(observer === undefined ? {} : { observer }),
  }).run()
}
