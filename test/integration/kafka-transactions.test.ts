import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { killDaemons, post, startForegroundDaemon } from '../helpers/daemon.js'
import { deleteTopics, kafkaNamespace, testKafka } from '../helpers/kafka-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  await killDaemons()
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

function part(txn: string, i: number): Record<string, unknown> {
  return { txn, key: `k${i % 20}`, payload: { op: 'put', table: `t${i % 3}`, key: { id: i % 7 }, item: { id: i % 7, seq: i } } }
}

function expectedState(parts: number): Map<string, unknown> {
  const state = new Map<string, unknown>()
  for (let i = 0; i < parts; i++) state.set(`t${i % 3}/${i % 7}`, { id: i % 7, seq: i })
  return state
}

const kvState = (): Map<string, unknown> => new Map(kvItems(wal.stateDir, 'orders').map((row) => [`${row.tbl}/${JSON.parse(row.pk)[0][1]}`, JSON.parse(row.item!) as unknown]))

describe('transactions on a Kafka namespace', () => {
  it('writes 50 parts and the marker in one Kafka transaction; consumers in 3 shards apply them all, exactly', async () => {
    topics.push(await kafkaNamespace(wal, { partitions: 6 }))
    const produced = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([...Array.from({ length: 50 }, (_, i) => part('order-7', i)), { txn: 'order-7', commit: true }]) })
    expect(produced.code, produced.stderr).toBe(0)
    const acks = jsonLines(produced.stdout)
    expect(acks).toHaveLength(51)
    expect(acks.at(-1)).toMatchObject({ txn: 'order-7', commit: true, parts: 50, durable: true })
    // Readers see parts marked with their transaction, and the marker says where each part is.
    const tail = jsonLines<{ headers: Record<string, string>; payload: { parts?: unknown[] } }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tail).toHaveLength(51)
    expect(tail.filter((r) => r.headers['wal-txn'] === 'order-7')).toHaveLength(51)
    expect(tail.find((r) => r.headers['wal-txn-commit'] === '50')!.payload.parts).toHaveLength(50)

    const shards = await Promise.all([0, 1, 2].map((i) => wal.run(['consume', '-n', 'orders', '--shard', `${i}/3`, '--until-idle'])))
    for (const s of shards) expect(s.code, s.stderr).toBe(0)
    expect(kvState()).toEqual(expectedState(50))
    // explain finds the transaction by its id: its parts where the marker says, the marker, and the target past it.
    const explained = await wal.run(['explain', '-n', 'orders', 'order-7', '--json'])
    expect(explained.code, explained.stderr).toBe(0)
    const report = JSON.parse(explained.stdout) as { state: string; parts: Array<{ seq: number; offset: number }>; marker: { id: string } | null; targets: unknown[] }
    expect(report.state).toBe('committed')
    expect(report.parts.map((p) => p.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(report.marker!.id).toBe(acks.at(-1)!.id)
    expect(report.targets).toEqual([expect.objectContaining({ target: 'kv', status: 'applied', partsApplied: 50 })])
    const unknown = await wal.run(['explain', '-n', 'orders', 'order-8', '--json'])
    expect(unknown.code).not.toBe(0)
  }, 180_000)

  it('aborts a transaction whose producer was killed before the marker: nothing applied, one txn-aborted DLQ entry per target, explain says aborted', async () => {
    const outPath = join(wal.cwd, 'out.ndjson')
    topics.push(await kafkaNamespace(wal, { partitions: 2, targets: { kv: { type: 'kv' }, out: { type: 'file', path: outPath } }, settings: { txnTimeoutMs: 3000 } }))
    // A committed transaction, before: it never reports aborted.
    const kept = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([part('kept-1', 0), part('kept-1', 1), { txn: 'kept-1', commit: true }]) })
    expect(kept.code, kept.stderr).toBe(0)
    // As if its producer had died between the commit and removing its record open: consumers find its marker.
    const writer = testKafka.producer()
    await writer.connect()
    await writer.send({ topic: `${topics.at(-1)}.wal-state`, acks: -1, messages: [{ key: 'txn:kept-1', value: JSON.stringify({ txn: 'kept-1', state: 'open', openedAtMs: Date.now() - 60_000 }) }] })
    await writer.disconnect()
    const producer = wal.spawn(['produce', '-n', 'orders', '--json'])
    let acks = ''
    producer.stdout!.setEncoding('utf8').on('data', (d: string) => (acks += d))
    producer.stderr!.resume()
    const closed = new Promise((resolve) => producer.on('close', resolve))
    producer.stdin!.write(ndjson(Array.from({ length: 5 }, (_, i) => part('lost-1', i + 10))))
    await waitFor(() => acks.trim().split('\n').filter(Boolean).length === 5, { timeoutMs: 60_000 })
    producer.kill('SIGKILL')
    await closed
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'after', payload: { op: 'put', table: 'plain', key: { id: 1 }, item: { id: 1 } } }]) })).code).toBe(0)

    const explain = async (txn: string): Promise<{ state: string; detail: string; targets: Array<{ target: string; status: string; detail: string }> }> => {
      const run = await wal.run(['explain', '-n', 'orders', txn, '--json'])
      expect(run.code, run.stderr).toBe(0)
      return JSON.parse(run.stdout)
    }
    // Recorded open when it began; past txnTimeoutMs, the next consumer aborts it.
    expect((await explain('lost-1')).state).toBe('open')
    await waitFor(async () => (await explain('lost-1')).detail.includes('past txnTimeoutMs'), { timeoutMs: 60_000, intervalMs: 500 })
    const late = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(late.code, late.stderr).toBe(8)
    const stats = (JSON.parse(late.stdout) as { targets: Array<{ target: string; txnAborted: number }> }).targets
    expect(stats.map((t) => [t.target, t.txnAborted]).sort()).toEqual([['kv', 1], ['out', 1]])
    // The committed transaction and the plain mutation are applied; no part of the lost one is.
    expect(kvItems(wal.stateDir, 'orders').map((r) => `${r.tbl}/${JSON.parse(r.pk)[0][1]}`).sort()).toEqual(['plain/1', 't0/0', 't1/1'])
    expect(readFileSync(outPath, 'utf8')).toContain('"seq":1')
    expect(readFileSync(outPath, 'utf8')).not.toMatch(/"seq":1[0-4]/)

    const dlq = JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ target: string; key: string; errorClass: string; code: string }> }
    expect(dlq.entries.map((e) => [e.target, e.key, e.errorClass, e.code]).sort()).toEqual([
      ['kv', 'lost-1', 'txn-aborted', 'WAL_TXN_ABORTED'],
      ['out', 'lost-1', 'txn-aborted', 'WAL_TXN_ABORTED'],
    ])
    const report = await explain('lost-1')
    expect(report.state).toBe('aborted')
    expect(report.targets.map((t) => [t.target, t.status])).toEqual([
      ['kv', 'aborted'],
      ['out', 'aborted'],
    ])
    expect(report.targets[0]!.detail).toMatch(/in the DLQ \(entry \d+, class txn-aborted\)/)
    expect((await explain('kept-1')).state).toBe('committed')

    // Reported once: consumers that come after file nothing more.
    const again = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(again.code, again.stderr).toBe(0)
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toHaveLength(2)
    const tail = jsonLines<{ key: string }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tail.map((r) => r.key).filter((k) => k === 'after' || k === 'lost-1')).toEqual(['after'])
  }, 180_000)

  it('refuses the marker of a transaction reported aborted while its producer waited: nothing of it is applied', async () => {
    topics.push(await kafkaNamespace(wal, { partitions: 2, settings: { txnTimeoutMs: 3000 } }))
    const producer = wal.spawn(['produce', '-n', 'orders', '--json'])
    let acks = ''
    producer.stdout!.setEncoding('utf8').on('data', (d: string) => (acks += d))
    producer.stderr!.resume()
    const exited = new Promise<number | null>((resolve) => producer.on('close', resolve))
    producer.stdin!.write(ndjson(Array.from({ length: 3 }, (_, i) => part('slow-1', i))))
    await waitFor(() => acks.trim().split('\n').filter(Boolean).length === 3, { timeoutMs: 60_000 })
    await waitFor(async () => (JSON.parse((await wal.run(['explain', '-n', 'orders', 'slow-1', '--json'])).stdout) as { detail: string }).detail.includes('past txnTimeoutMs'), {
      timeoutMs: 60_000,
      intervalMs: 500,
    })
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(8)
    // The marker comes late: refused, and the producer says so.
    producer.stdin!.end(ndjson([{ txn: 'slow-1', commit: true }]))
    expect(await exited).toBe(4)
    const marker = jsonLines<{ error?: { code: string; message: string } }>(acks).at(-1)!
    expect(marker.error).toMatchObject({ code: 'WAL_TXN_REFUSED' })
    expect(marker.error!.message).toMatch(/aborted/)
    const after = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(after.code, after.stderr).toBe(0)
    expect(kvItems(wal.stateDir, 'orders')).toEqual([])
    expect((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).toBe('')
    expect((JSON.parse((await wal.run(['explain', '-n', 'orders', 'slow-1', '--json'])).stdout) as { state: string }).state).toBe('aborted')
  }, 180_000)

  it('applies a part after the earlier delayed write of its key, across --until-idle runs: a file target sees the key in produce order', async () => {
    const outPath = join(wal.cwd, 'out.ndjson')
    // One partition: across partitions, Kafka gives no order between the marker and K's later write.
    topics.push(await kafkaNamespace(wal, { partitions: 1, targets: { out: { type: 'file', path: outPath } } }))
    const notBefore = Date.now() + 8000
    const input = [
      { key: 'K', payload: { seq: 1 }, notBefore },
      { txn: 't1', key: 'K', payload: { seq: 2 } },
      { txn: 't1', key: 'other', payload: { seq: 2 } },
      { txn: 't1', commit: true },
    ]
    const produced = await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })
    expect(produced.code, produced.stderr).toBe(0)
    // K's next write in a later run (a run of its own: the marker is in the log before it either way).
    const after = await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'K', payload: { seq: 3 } }]) })
    expect(after.code, after.stderr).toBe(0)
    const seqs = (key: string): number[] => {
      let text = ''
      try {
        text = readFileSync(outPath, 'utf8')
      } catch {
        return []
      }
      return jsonLines<{ key: string; payload: { seq: number } }>(text).filter((l) => l.key === key).map((l) => l.payload.seq)
    }
    const early = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(early.code, early.stderr).toBe(0)
    if (Date.now() < notBefore) expect(seqs('K')).toEqual([])
    await waitFor(() => Date.now() > notBefore + 200, { timeoutMs: 60_000, intervalMs: 100 })
    const late = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(late.code, late.stderr).toBe(0)
    expect(seqs('K')).toEqual([1, 2, 3])
    expect(seqs('other')).toEqual([2])
  }, 180_000)

  it('keeps the lines after a marker after it in the log, as in the input, in one produce run', async () => {
    topics.push(await kafkaNamespace(wal, { partitions: 1 }))
    const input = [
      { key: 'K', payload: { seq: 1 } },
      { txn: 't1', key: 'K', payload: { seq: 2 } },
      { txn: 't1', key: 'other', payload: { seq: 2 } },
      { txn: 't1', commit: true },
      { key: 'K', payload: { seq: 3 } },
      { key: 'other', payload: { seq: 3 } },
    ]
    const produced = await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })
    expect(produced.code, produced.stderr).toBe(0)
    const records = jsonLines<{ key: string; offset: number; txn?: string; commit?: boolean; payload?: { seq: number } }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    const order = records.sort((a, b) => a.offset - b.offset).map((r) => (r.key === 't1' ? 'marker' : `${r.key}:${r.payload?.seq}`))
    expect(order).toEqual(['K:1', 'K:2', 'other:2', 'marker', 'K:3', 'other:3'])
  }, 120_000)

  it('over HTTP, holds the Kafka transaction open between parts requests and commits it with the marker', async () => {
    topics.push(await kafkaNamespace(wal, { partitions: 3 }))
    const config = JSON.parse(readFileSync(join(wal.cwd, '.walrc.json'), 'utf8')) as Record<string, unknown>
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ ...config, daemon: { port: 0, leaseTtlMs: 1000 } }))
    const daemon = await startForegroundDaemon(wal)
    const base = `${daemon.url}/v1/namespaces/orders/transactions/h-1`
    const first = await post(`${base}/parts`, Array.from({ length: 5 }, (_, i) => part('ignored', i)).map(({ txn: _t, ...p }) => p))
    expect(first.status, JSON.stringify(first.body)).toBe(200)
    const second = await post(`${base}/parts`, Array.from({ length: 5 }, (_, i) => part('ignored', i + 5)).map(({ txn: _t, ...p }) => p))
    expect(second.status).toBe(200)
    // Not committed yet: read_committed readers see none of it.
    expect((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).toBe('')
    const committed = await post(`${base}/commit?parts=10`, {})
    expect(committed.status, JSON.stringify(committed.body)).toBe(200)
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === expectedState(10).size, { timeoutMs: 60_000 })
    expect(kvState()).toEqual(expectedState(10))
    expect(await daemon.stop()).toBe(0)
  }, 180_000)
})
