import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer } from '../helpers/http-target-server.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

/** Part i of a transaction: 20 log keys, 3 tables, 7 rows per table, so rows are written more than once. */
function part(txn: string, i: number): Record<string, unknown> {
  return { txn, key: `k${i % 20}`, payload: { op: 'put', table: `t${i % 3}`, key: { id: i % 7 }, item: { id: i % 7, seq: i } } }
}

/** The kv state the parts leave when applied in order: per table and row, the last part that wrote it. */
function expectedState(parts: number): Map<string, unknown> {
  const state = new Map<string, unknown>()
  for (let i = 0; i < parts; i++) state.set(`t${i % 3}/${i % 7}`, { id: i % 7, seq: i })
  return state
}

function kvState(namespace = 'default'): Map<string, unknown> {
  return new Map(kvItems(wal.stateDir, namespace).map((row) => [`${row.tbl}/${JSON.parse(row.pk)[0][1]}`, JSON.parse(row.item!) as unknown]))
}

function txnProgress(txn: string): { applied_seq: number; state: string } | undefined {
  const db = new DatabaseSync(join(wal.stateDir, 'embedded', 'default.db'), { readOnly: true, timeout: 5000 })
  try {
    return db.prepare('SELECT applied_seq, state FROM txn_progress WHERE txn = ?').get(txn) as { applied_seq: number; state: string } | undefined
  } catch {
    return undefined
  } finally {
    db.close()
  }
}

/** A `wal produce --json` with stdin kept open: lines are written one by one, acks read as they come. */
function openProducer(args: string[] = []): { write(lines: unknown[]): void; acks: Array<Record<string, unknown>>; end(): Promise<number | null>; child: ReturnType<Sandbox['spawn']> } {
  const child = wal.spawn(['produce', '--json', ...args])
  const acks: Array<Record<string, unknown>> = []
  let buffer = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buffer += d
    const lines = buffer.split('\n')
    buffer = lines.pop()!
    for (const line of lines) if (line.trim() !== '') acks.push(JSON.parse(line) as Record<string, unknown>)
  })
  child.stderr!.resume()
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  return {
    child,
    acks,
    write: (lines) => child.stdin!.write(ndjson(lines)),
    end: () => {
      child.stdin!.end()
      return closed
    },
  }
}

describe('transactions on the embedded log', () => {
  it('applies 50 parts over 20 keys and 3 tables only after the marker, with consumers in 3 shards, and exactly', async () => {
    const producer = openProducer()
    producer.write(Array.from({ length: 50 }, (_, i) => part('order-7', i)))
    await waitFor(() => producer.acks.length === 50)
    expect(producer.acks.every((a) => a.durable === true && a.txn === 'order-7')).toBe(true)
    expect(producer.acks.map((a) => a.txnSeq)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    // The parts spread over the partitions: no one shard holds them all.
    expect(new Set(producer.acks.map((a) => a.partition)).size).toBeGreaterThan(3)

    const shards = [0, 1, 2].map((i) => {
      const child = wal.spawn(['consume', '--shard', `${i}/3`, '--lease-ttl', '2s'])
      child.stdout!.resume()
      child.stderr!.resume()
      return { child, closed: new Promise((resolve) => child.on('close', resolve)) }
    })
    // The consumers read past every part (their offsets are committed beyond them) and applied none.
    await waitFor(() => {
      const db = new DatabaseSync(join(wal.stateDir, 'embedded', 'default.db'), { readOnly: true, timeout: 5000 })
      try {
        const committed = db.prepare('SELECT sum(next_offset) AS n FROM consumer_offsets').get() as { n: number | null }
        return committed.n === 50
      } catch {
        return false
      } finally {
        db.close()
      }
    }, { timeoutMs: 60_000 })
    expect(kvItems(wal.stateDir)).toEqual([])
    const open = JSON.parse((await wal.run(['explain', 'order-7', '--json'])).stdout) as { state: string; parts: unknown[]; marker: unknown; targets: Array<{ status: string }> }
    expect(open.state).toBe('open')
    expect(open.parts).toHaveLength(50)
    expect(open.marker).toBeNull()
    expect(open.targets[0]!.status).toBe('open')

    producer.write([{ txn: 'order-7', commit: true }])
    expect(await producer.end()).toBe(0)
    const marker = producer.acks.at(-1)!
    expect(marker).toMatchObject({ txn: 'order-7', commit: true, parts: 50, durable: true })

    await waitFor(() => txnProgress('order-7')?.state === 'applied', { timeoutMs: 60_000 })
    for (const s of shards) s.child.kill('SIGTERM')
    await Promise.all(shards.map((s) => s.closed))
    expect(kvState()).toEqual(expectedState(50))
    const done = JSON.parse((await wal.run(['explain', 'order-7', '--json'])).stdout) as { state: string; marker: { id: string }; targets: Array<{ status: string; partsApplied: number }> }
    expect(done.state).toBe('committed')
    expect(done.marker.id).toBe(marker.id)
    expect(done.targets).toEqual([expect.objectContaining({ target: 'kv', status: 'applied', partsApplied: 50 })])
  })

  it('resumes after the last applied part when its consumer is killed with SIGKILL mid-transaction, and ends exact', async () => {
    const produced = await wal.run(['produce', '--txn', '--json'], { input: ndjson(Array.from({ length: 50 }, (_, i) => { const { txn: _txn, ...line } = part('x', i); return line })) })
    expect(produced.code).toBe(0)
    const acks = jsonLines(produced.stdout)
    expect(acks).toHaveLength(51)
    const marker = acks.at(-1)!
    expect(marker).toMatchObject({ commit: true, parts: 50, durable: true })
    expect(marker).not.toHaveProperty('line')
    const txn = marker.txn as string
    expect(acks.slice(0, 50).every((a) => a.txn === txn)).toBe(true)

    // Slowly (10 parts a second), so that the kill lands mid-transaction.
    const consumer = wal.spawn(['consume', '--rate', '10/s', '--lease-ttl', '1s'])
    consumer.stdout!.resume()
    consumer.stderr!.resume()
    const closed = new Promise((resolve) => consumer.on('close', resolve))
    await waitFor(() => (txnProgress(txn)?.applied_seq ?? -1) >= 5, { timeoutMs: 60_000 })
    consumer.kill('SIGKILL')
    await closed
    const atKill = txnProgress(txn)!
    expect(atKill.state).toBe('applying')
    expect(atKill.applied_seq).toBeLessThan(49)
    const midway = JSON.parse((await wal.run(['explain', txn, '--json'])).stdout) as { targets: Array<{ status: string; partsApplied: number }> }
    expect(midway.targets[0]).toMatchObject({ status: 'applying', partsApplied: atKill.applied_seq + 1 })

    const resumed = await wal.run(['consume', '--until-idle', '--lease-ttl', '1s'])
    expect(resumed.code).toBe(0)
    expect(txnProgress(txn)).toEqual({ applied_seq: 49, state: 'applied' })
    expect(kvState()).toEqual(expectedState(50))
  })

  it('aborts a transaction whose producer died before the marker: nothing applied, explain and the DLQ say aborted', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'defaults:\n  txnTimeoutMs: 1500\n')
    const producer = openProducer()
    producer.write(Array.from({ length: 5 }, (_, i) => part('lost-1', i)))
    await waitFor(() => producer.acks.length === 5)
    producer.child.kill('SIGKILL')
    await producer.end()

    // Before the timeout: open, not applied.
    const early = await wal.run(['consume', '--until-idle'])
    expect(early.code).toBe(0)
    expect(kvItems(wal.stateDir)).toEqual([])

    await waitFor(async () => JSON.parse((await wal.run(['explain', 'lost-1', '--json'])).stdout).detail.includes('past txnTimeoutMs'), { timeoutMs: 30_000, intervalMs: 200 })
    const late = await wal.run(['consume', '--until-idle', '--json'])
    // It was dead-lettered (exit 8), and nothing of it was applied.
    expect(late.code).toBe(8)
    expect(JSON.parse(late.stdout).targets[0]).toMatchObject({ txnAborted: 1, applied: 0 })
    expect(kvItems(wal.stateDir)).toEqual([])

    const report = JSON.parse((await wal.run(['explain', 'lost-1', '--json'])).stdout) as { state: string; parts: unknown[]; targets: Array<{ status: string; detail: string }> }
    expect(report.state).toBe('aborted')
    expect(report.parts).toHaveLength(5)
    expect(report.targets[0]!.status).toBe('aborted')
    const text = await wal.run(['explain', 'lost-1'])
    expect(text.stdout).toMatch(/transaction lost-1 .*aborted/)

    const dlq = async (): Promise<Array<{ errorClass: string; code: string; key: string; message: string }>> => JSON.parse((await wal.run(['dlq', 'ls', '--json'])).stdout).entries
    expect(await dlq()).toEqual([expect.objectContaining({ errorClass: 'txn-aborted', code: 'WAL_TXN_ABORTED', key: 'lost-1' })])
    expect((await dlq())[0]!.message).toMatch(/no completion marker within txnTimeoutMs \(1500 ms\).*none of its 5 parts is applied/)
    // Another consume files nothing twice.
    expect((await wal.run(['consume', '--until-idle'])).code).toBe(0)
    expect(await dlq()).toHaveLength(1)
    // A replay applies nothing of it.
    const replay = await wal.run(['dlq', 'replay', '--json'])
    expect(replay.code).toBe(0)
    await wal.run(['consume', '--until-idle'])
    expect(kvItems(wal.stateDir)).toEqual([])

    // The transaction cannot be finished late: its parts and marker are refused.
    const again = await wal.run(['produce', '--json'], { input: ndjson([part('lost-1', 5), { txn: 'lost-1', commit: true }]) })
    expect(again.code).toBe(4)
    const answers = jsonLines<{ durable: boolean; error?: { code: string; message: string } }>(again.stdout)
    expect(answers[0]!.error).toMatchObject({ code: 'WAL_TXN_REFUSED' })
    expect(answers[0]!.error!.message).toMatch(/aborted/)
    expect(answers[1]!.durable).toBe(false)
  })

  it('refuses a marker whose parts are not all written, and a marker with no parts before it', async () => {
    const result = await wal.run(['produce', '--json'], {
      input: ndjson([part('a', 0), { txn: 'a', key: 'k', payload: { op: 'put', table: 't0', key: { id: 1 }, item: { id: 1 } }, createdAt: 'yesterday' }, { txn: 'a', commit: true }, { txn: 'b', commit: true }, { commit: true }]) + '{"txn":"c","key":\n',
    })
    expect(result.code).toBe(4)
    const answers = jsonLines<{ line: number; durable: boolean; error?: { code: string; message: string } }>(result.stdout)
    expect(answers.map((a) => a.durable)).toEqual([true, false, false, false, false, false])
    expect(answers[2]!.error!.message).toMatch(/transaction "a" is not committed: line 2 was rejected/)
    expect(answers[3]!.error!.message).toMatch(/transaction "b" has no parts earlier in this input/)
    expect(answers[4]!.error!.message).toMatch(/field "commit": a marker names its transaction/)
    await wal.run(['consume', '--until-idle'])
    expect(kvItems(wal.stateDir)).toEqual([])
  })
})

describe('wal skip and transactions', () => {
  it('passes a skipped part by, and every part when the marker is skipped', async () => {
    const produce = async (parts: number): Promise<Array<Record<string, unknown>>> =>
      jsonLines((await wal.run(['produce', '--txn', '--json'], { input: ndjson(Array.from({ length: parts }, (_, i) => ({ key: `k${i}`, payload: { op: 'put', table: 't', key: { id: `${parts}-${i}` }, item: { i } } }))) })).stdout)
    const first = await produce(3)
    expect((await wal.run(['skip', first[1]!.id as string])).code).toBe(0)
    const second = await produce(2)
    expect((await wal.run(['skip', second.at(-1)!.id as string, '--reason', 'whole transaction'])).code).toBe(0)
    const result = await wal.run(['consume', '--until-idle', '--json'])
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ targets: [{ target: 'kv', applied: 2, skipped: 3 }] })
    expect(kvItems(wal.stateDir).map((r) => JSON.parse(r.pk)[0][1] as string)).toEqual(['3-0', '3-2'])
  })
})

describe('transactions and per-key order', () => {
  it("applies a transaction at its marker's place among the other mutations of its parts' keys: a file target sees each key in log order", async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 1, targets: { out: { type: 'file', path: outPath } } } } }))
    // Per round: a transaction writing the hot key and a cold one, its marker, then plain writes of both keys.
    const lines: unknown[] = []
    let seq = 0
    for (let round = 0; round < 150; round++) {
      const cold = `c${round % 7}`
      lines.push({ txn: `t${round}`, key: 'hot', payload: { seq: seq++ } }, { txn: `t${round}`, key: cold, payload: { seq: seq++ } }, { txn: `t${round}`, commit: true })
      lines.push({ key: 'hot', payload: { seq: seq++ } }, { key: cold, payload: { seq: seq++ } })
    }
    const produced = await wal.run(['produce', '-n', 'orders'], { input: ndjson(lines) })
    expect(produced.code, produced.stderr).toBe(0)
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(consumed.code, consumed.stderr).toBe(0)

    const written = jsonLines<{ key: string; payload: { seq: number } }>(readFileSync(outPath, 'utf8'))
    expect(written).toHaveLength(seq)
    const byKey = new Map<string, number[]>()
    for (const line of written) byKey.set(line.key, [...(byKey.get(line.key) ?? []), line.payload.seq])
    for (const [key, seqs] of byKey) expect(seqs, key).toEqual([...seqs].sort((a, b) => a - b))
  })

  describe('a part whose key has an earlier mutation waiting in the schedule', () => {
    /** K's earlier write (seq 1) waits; a transaction writes K (seq 2) and another key; K is written again after the marker (seq 3). */
    function lines(first: Record<string, unknown>): unknown[] {
      return [
        { key: 'K', payload: { seq: 1 }, ...first },
        { txn: 't1', key: 'K', payload: { seq: 2 } },
        { txn: 't1', key: 'other', payload: { seq: 2 } },
        { txn: 't1', commit: true },
        { key: 'K', payload: { seq: 3 } },
        { key: 'cold', payload: { seq: 4 } },
      ]
    }
    function fileSeqs(outPath: string): Map<string, number[]> {
      const byKey = new Map<string, number[]>()
      let text = ''
      try {
        text = readFileSync(outPath, 'utf8')
      } catch {
        return byKey
      }
      for (const line of jsonLines<{ key: string; payload: { seq: number } }>(text)) byKey.set(line.key, [...(byKey.get(line.key) ?? []), line.payload.seq])
      return byKey
    }

    /** A namespace of two partitions with a file target; its path. */
    function fileTarget(): string {
      const outPath = join(wal.dir, 'out.ndjson')
      writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { out: { type: 'file', path: outPath } } } } }))
      return outPath
    }
    /** Once K's first write is due, a drain applies it, then the transaction, then K's last write. */
    async function drainOnceDue(notBefore: number, outPath: string): Promise<void> {
      await waitFor(() => Date.now() > notBefore + 200, { timeoutMs: 30_000, intervalMs: 100 })
      const late = await wal.run(['consume', '-n', 'orders', '--until-idle'])
      expect(late.code, late.stderr).toBe(0)
      const seqs = fileSeqs(outPath)
      expect(seqs.get('K')).toEqual([1, 2, 3])
      expect(seqs.get('other')).toEqual([2])
    }

    it('waits for the delayed write of its key: the transaction is applied after it, in produce order, also when --until-idle stops before it is due', async () => {
      const outPath = fileTarget()
      const notBefore = Date.now() + 4000
      const produced = await wal.run(['produce', '-n', 'orders'], { input: ndjson(lines({ notBefore })) })
      expect(produced.code, produced.stderr).toBe(0)

      // Before K's first write is due: the other keys are applied, K and the transaction wait.
      const early = await wal.run(['consume', '-n', 'orders', '--until-idle'])
      expect(early.code, early.stderr).toBe(0)
      if (Date.now() < notBefore) {
        expect(fileSeqs(outPath).get('cold')).toEqual([4])
        expect(fileSeqs(outPath).get('K')).toBeUndefined()
        expect(fileSeqs(outPath).get('other')).toBeUndefined()
      }

      await drainOnceDue(notBefore, outPath)
    }, 60_000)

    it('waits for the delayed write of its key across a SIGKILL of the consumer while the transaction waits', async () => {
      const outPath = fileTarget()
      const notBefore = Date.now() + 5000
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(lines({ notBefore })) })).code).toBe(0)

      const consumer = wal.spawn(['consume', '-n', 'orders'])
      consumer.stdout!.resume()
      consumer.stderr!.resume()
      const closed = new Promise<number | null>((resolve) => consumer.on('close', resolve))
      await waitFor(() => fileSeqs(outPath).has('cold'), { timeoutMs: 30_000, intervalMs: 50 })
      consumer.kill('SIGKILL')
      await closed
      const killedAt = fileSeqs(outPath)
      if (Date.now() < notBefore) expect(killedAt.get('K')).toBeUndefined()

      await drainOnceDue(notBefore, outPath)
    }, 60_000)

    it('stops waiting, and is applied at its marker, when the mutations of its keys behind it would stop reading for every key', async () => {
      const outPath = fileTarget()
      const input: unknown[] = [{ key: 'K', payload: { seq: 1 }, notBefore: Date.now() + 600_000 }, { txn: 't1', key: 'K', payload: { seq: 2 } }, { txn: 't1', commit: true }]
      for (let seq = 3; seq < 3003; seq++) input.push({ key: 'K', payload: { seq } })
      for (let i = 0; i < 20; i++) input.push({ key: `cold${i}`, payload: { seq: 4000 + i } })
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--idle-timeout', '60s'])
      expect(consumed.code, consumed.stderr).toBe(0)
      const seqs = fileSeqs(outPath)
      expect([...seqs.keys()].filter((key) => key.startsWith('cold'))).toHaveLength(20)
      // K's first write is due in 10 minutes: the rest of K waits behind it in the schedule.
      expect(seqs.get('K')).toEqual([2])
    }, 90_000)

    it('waits for the write of its key that backs off in the schedule: the target sees K in produce order', async () => {
      const server = await startTargetServer()
      try {
        writeFileSync(
          join(wal.cwd, '.walrc.json'),
          JSON.stringify({ namespaces: { orders: { partitions: 2, retry: { initialBackoffMs: 6000, jitter: 0, maxAttempts: 5 }, targets: { api: { type: 'http', url: server.url } } } } }),
        )
        // K's first write answers 503 once: it goes to the schedule for 6 s.
        server.failFirst('K', 1)
        expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(lines({})) })).code).toBe(0)
        const consumer = wal.spawn(['consume', '-n', 'orders'])
        consumer.stdout!.resume()
        consumer.stderr!.resume()
        const closed = new Promise<number | null>((resolve) => consumer.on('close', resolve))
        const applied = (key: string): number[] => server.received.filter((r) => r.key === key && r.status === 200).map((r) => (JSON.parse(r.body) as { seq: number }).seq)
        await waitFor(() => applied('K').length >= 3 && applied('other').length >= 1, { timeoutMs: 60_000, intervalMs: 100 })
        consumer.kill('SIGTERM')
        expect(await closed).toBe(0)
        expect(applied('K')).toEqual([1, 2, 3])
        expect(applied('other')).toEqual([2])
      } finally {
        await server.close()
      }
    }, 90_000)
  })
})
