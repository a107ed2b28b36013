/**
 * Consumers that apply pages in batches (kv and file targets, no rate limit), under faults: frozen
 * (SIGSTOP) past their lease while another consumer of the same shard takes over, killed (SIGKILL)
 * while applying. The promise holds whatever the moment: every acked mutation ends applied or
 * dead-lettered with its reason, committed offsets never move back, the kv store ends with each key's
 * last write, and each key's mutations first reach the file target in the order they were produced.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { committedOffsets, deadLetters, highMarks, kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

const TARGETS = ['store', 'out'] as const

function configure(outPath: string, partitions = 4): void {
  writeFileSync(
    join(wal.cwd, '.walrc.json'),
    JSON.stringify({ namespaces: { orders: { partitions, targets: { store: { type: 'kv' }, out: { type: 'file', path: outPath } } } } }),
  )
}

interface Line {
  key: string
  payload: unknown
  notBefore?: number
  txn?: string
}

/**
 * One hot key (every third mutation) among many cold ones; every 997th is not an operation (kv
 * dead-letters it). With `mixed`, every 211th is delayed by a few seconds and every 307th is the one
 * part of a transaction on a key of a few of their own (its marker follows it at once, so it applies at
 * its own place).
 */
function corpus(count: number, mixed = false): Line[] {
  const delayedUntil = Date.now() + 4000
  return Array.from({ length: count }, (_, seq) => {
    const key = seq % 3 === 0 ? 'hot' : `c${seq % 701}`
    if (seq % 997 === 5) return { key, payload: { seq, note: 'not an operation' } }
    // A transaction applies at its marker: its parts do not wait behind a delayed mutation of their key
    // (docs/transactions.md), so they have keys of their own here.
    if (mixed && seq % 307 === 11) return { key: `tx${seq % 5}`, payload: { op: 'put', table: 't', key: { id: `tx${seq % 5}` }, item: { key: `tx${seq % 5}`, seq } }, txn: `t${seq}` }
    const line: Line = { key, payload: { op: 'put', table: 't', key: { id: key }, item: { key, seq } } }
    if (mixed && seq % 211 === 7) line.notBefore = delayedUntil
    return line
  })
}

/** The lines to produce: a transaction's part is followed by its marker. */
function produceLines(input: readonly Line[]): unknown[] {
  return input.flatMap((line) => (line.txn === undefined ? [line] : [line, { txn: line.txn, commit: true }]))
}

/** The acks of the mutations of `input`, in order (a marker's ack left out). */
function mutationAcks(stdout: string): Ack[] {
  return jsonLines<Ack & { commit?: boolean }>(stdout).filter((a) => a.commit !== true)
}

function committedSum(target: string): number {
  return committedOffsets(wal.stateDir, 'orders')
    .filter((r) => r.target === target)
    .reduce((n, r) => n + r.next_offset, 0)
}

function allCommitted(): boolean {
  const high = highMarks(wal.stateDir, 'orders')
  const committed = committedOffsets(wal.stateDir, 'orders')
  return TARGETS.every((target) => [...high].every(([p, h]) => committed.find((r) => r.target === target && r.partition === p)?.next_offset === h))
}

function watchOffsets(): { regressions: string[]; stop(): void } {
  const last = new Map<string, number>()
  const regressions: string[] = []
  const timer = setInterval(() => {
    for (const r of committedOffsets(wal.stateDir, 'orders')) {
      const id = `${r.target}/${r.partition}`
      const before = last.get(id)
      if (before !== undefined && r.next_offset < before) regressions.push(`${id}: ${before} -> ${r.next_offset}`)
      last.set(id, r.next_offset)
    }
  }, 50)
  return { regressions, stop: () => clearInterval(timer) }
}

function spawnConsumer(args: string[]): { child: ReturnType<Sandbox['spawn']>; closed: Promise<number | null>; stderr: () => string } {
  const child = wal.spawn(['consume', '-n', 'orders', ...args])
  let err = ''
  child.stdout!.resume()
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
  return { child, closed, stderr: () => err }
}

function writeLocked(path: string): boolean {
  if (!existsSync(path)) return false
  const db = new DatabaseSync(path, { timeout: 0 })
  try {
    db.exec('BEGIN IMMEDIATE')
    db.exec('ROLLBACK')
    return false
  } catch {
    return true
  } finally {
    db.close()
  }
}

/** Checks the end state against what was produced: applied or dead-lettered, per-key order, last write wins. */
function checkOutcome(outPath: string, input: readonly Line[], acks: Ack[]): void {
  const ids = acks.map((a) => a.id)
  // file: every acked mutation at least once, whole lines, and each key's first copies in produce order.
  const lines = jsonLines<{ id: string; key: string; payload: { seq?: number; item?: { seq: number } } }>(readFileSync(outPath, 'utf8'))
  const seen = new Set(lines.map((l) => l.id))
  expect(ids.filter((id) => !seen.has(id))).toEqual([])
  const first = new Map<string, number[]>()
  const counted = new Set<string>()
  for (const line of lines) {
    if (counted.has(line.id)) continue
    counted.add(line.id)
    const seq = line.payload.seq ?? line.payload.item!.seq
    const seqs = first.get(line.key)
    if (seqs === undefined) first.set(line.key, [seq])
    else seqs.push(seq)
  }
  const inversions: string[] = []
  for (const [key, seqs] of first) for (let i = 1; i < seqs.length; i++) if (seqs[i]! < seqs[i - 1]!) inversions.push(`${key}: ${seqs[i - 1]} before ${seqs[i]}`)
  expect(inversions).toEqual([])

  // kv: the non-operations dead-lettered once each with their reason, every key's last put in the store.
  const dead = deadLetters(wal.stateDir, 'orders')
  const expectedDead = input.map((m, i) => ({ m, id: ids[i]! })).filter(({ m }) => !('op' in (m.payload as object)))
  expect(dead.map((d) => [d.target, d.id, d.code]).sort()).toEqual(expectedDead.map(({ id }) => ['store', id, 'NOT_AN_OPERATION']).sort())
  const last = new Map<string, number>()
  input.forEach((m, seq) => {
    if ('op' in (m.payload as object)) last.set(m.key, seq)
  })
  const items = kvItems(wal.stateDir, 'orders')
  expect(items).toHaveLength(last.size)
  for (const row of items) {
    const item = JSON.parse(row.item!) as { key: string; seq: number }
    expect(item.seq, item.key).toBe(last.get(item.key))
  }
}

describe('batches under faults', () => {
  it.each([
    ['between two writes to the kv store', false],
    ['holding the kv store\'s write lock (kv pauses at the new owner until it wakes)', true],
  ])('a consumer frozen (SIGSTOP) mid-page %s past its lease while another of its shard takes over commits nothing when it wakes; nothing is lost, reordered or overwritten', async (_moment, holdingKv) => {
    const outPath = join(wal.dir, 'out.ndjson')
    configure(outPath)
    // Enough that the first consumer is still mid-log when the moment to freeze it comes: it runs only
    // between the tries, and a consumer gets through 100k in about a second.
    const input = corpus(300_000)
    const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(produceLines(input)) })
    expect(produced.code, produced.stderr).toBe(0)
    const acks = mutationAcks(produced.stdout)
    expect(acks).toHaveLength(input.length)

    const watch = watchOffsets()
    try {
      const flags = ['--shard', '0/1', '--lease-ttl', '1500ms']
      const a = spawnConsumer(flags)
      await waitFor(() => committedSum('out') > 2000 && committedSum('store') > 2000, { timeoutMs: 120_000 })
      const logPath = join(wal.stateDir, 'embedded', 'orders.db')
      const kvPath = join(wal.stateDir, 'kv', 'orders.db')
      for (;;) {
        a.child.kill('SIGSTOP')
        // Never inside a commit to the log: that would hold up every consumer, whatever the leases say.
        if (!writeLocked(logPath) && writeLocked(kvPath) === holdingKv) break
        a.child.kill('SIGCONT')
        await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20))
      }
      const atStop = { out: committedSum('out'), store: committedSum('store') }
      expect(Math.max(atStop.out, atStop.store), 'the first consumer had applied the whole log before it could be frozen mid-page').toBeLessThan(input.length - 20_000)

      const b = spawnConsumer(flags)
      // The new owner gets well past where the frozen one was (on kv only once it can write there).
      await waitFor(() => committedSum('out') > atStop.out + 5000 && (holdingKv || committedSum('store') > atStop.store + 5000), { timeoutMs: 120_000 })
      if (holdingKv) expect(committedSum('store')).toBe(atStop.store)
      a.child.kill('SIGCONT')
      await waitFor(allCommitted, { timeoutMs: 180_000 })
      a.child.kill('SIGTERM')
      b.child.kill('SIGTERM')
      // 8: the run dead-lettered mutations (the non-operations), as after --until-idle.
      expect([0, 8], a.stderr()).toContain(await a.closed)
      expect([0, 8], b.stderr()).toContain(await b.closed)
    } finally {
      watch.stop()
    }
    expect(watch.regressions).toEqual([])
    checkOutcome(outPath, input, acks)
  }, 400_000)

  it('consumers killed (SIGKILL) again and again while they apply pages of mixed work — delays, transactions, a bad mutation, a hot key — lose nothing and keep each key in order', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    configure(outPath, 3)
    const input = corpus(60_000, true)
    const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(produceLines(input)) })
    expect(produced.code, produced.stderr).toBe(0)
    const acks = mutationAcks(produced.stdout)
    expect(acks).toHaveLength(input.length)

    const watch = watchOffsets()
    try {
      for (let round = 0; round < 6 && !allCommitted(); round++) {
        const before = committedSum('out') + committedSum('store')
        const consumer = spawnConsumer(['--shard', 'auto', '--lease-ttl', '1s'])
        // Killed once it committed something more, at a moment of its own.
        await waitFor(() => committedSum('out') + committedSum('store') > before || allCommitted(), { timeoutMs: 120_000 })
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 300))
        consumer.child.kill('SIGKILL')
        await consumer.closed
      }
      // The delays are due by now: a drain applies the rest.
      await waitFor(() => Date.now() > input.find((l) => l.notBefore !== undefined)!.notBefore! + 100)
      const drain = await wal.run(['consume', '-n', 'orders', '--until-idle', '--lease-ttl', '1s', '--json'])
      expect(drain.code, drain.stderr).not.toBe(null)
      expect([0, 8], drain.stderr).toContain(drain.code)
    } finally {
      watch.stop()
    }
    expect(watch.regressions).toEqual([])
    expect(allCommitted()).toBe(true)
    checkOutcome(outPath, input, acks)
  }, 400_000)
})

describe('dlq replay beside consumers', () => {
  it('replays while one consumer runs and another of the namespace is frozen (SIGSTOP): each bad mutation ends in the DLQ once, with its reason, and the rest is applied', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    configure(outPath, 4)
    const line = (seq: number): Line =>
      seq % 50 === 3 ? { key: `k${seq % 37}`, payload: { seq, note: 'not an operation' } } : { key: `k${seq % 37}`, payload: { op: 'put', table: 't', key: { id: `k${seq % 37}` }, item: { key: `k${seq % 37}`, seq } } }
    const first = Array.from({ length: 2000 }, (_, seq) => line(seq))
    const second = Array.from({ length: 2000 }, (_, seq) => line(2000 + seq))
    const producedFirst = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(first) })
    expect(producedFirst.code, producedFirst.stderr).toBe(0)

    const a = spawnConsumer(['--shard', '0/2', '--lease-ttl', '1500ms'])
    const b = spawnConsumer(['--shard', '1/2', '--lease-ttl', '1500ms'])
    await waitFor(allCommitted, { timeoutMs: 120_000 })
    // Frozen outside the log's and the kv store's write locks (the replay writes to the log).
    const logPath = join(wal.stateDir, 'embedded', 'orders.db')
    const kvPath = join(wal.stateDir, 'kv', 'orders.db')
    for (;;) {
      b.child.kill('SIGSTOP')
      if (!writeLocked(logPath) && !writeLocked(kvPath)) break
      b.child.kill('SIGCONT')
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20))
    }
    const producedSecond = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(second) })
    expect(producedSecond.code, producedSecond.stderr).toBe(0)
    const acks = [...mutationAcks(producedFirst.stdout), ...mutationAcks(producedSecond.stdout)]
    // The running consumer's partitions (0 and 2) are done with the second batch too.
    const high = highMarks(wal.stateDir, 'orders')
    await waitFor(() => committedOffsets(wal.stateDir, 'orders').filter((r) => r.partition % 2 === 0 && r.next_offset === high.get(r.partition)).length === 4, { timeoutMs: 120_000 })

    const replay = await wal.run(['dlq', 'replay', '-n', 'orders', '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    b.child.kill('SIGCONT')
    await waitFor(allCommitted, { timeoutMs: 120_000 })
    a.child.kill('SIGTERM')
    b.child.kill('SIGTERM')
    expect([0, 8], a.stderr()).toContain(await a.closed)
    expect([0, 8], b.stderr()).toContain(await b.closed)

    const input = [...first, ...second]
    const bad = acks.filter((_, i) => !('op' in (input[i]!.payload as object))).map((ack) => ack.id)
    expect(bad).toHaveLength(80)
    const dead = deadLetters(wal.stateDir, 'orders')
    expect(dead.map((d) => d.id).sort()).toEqual([...bad].sort())
    expect(new Set(dead.map((d) => `${d.target} ${d.error_class} ${d.code}`))).toEqual(new Set(['store fatal NOT_AN_OPERATION']))
    checkOutcome(outPath, input, acks)
  }, 300_000)
})
