// Transactions on an SQS namespace (ElasticMQ): the parts are kept in the namespace's state store and
// only the completion marker is enqueued; consumers apply the parts in order when the marker arrives,
// resume after a SIGKILL, and abort a transaction whose marker never came.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { killDaemons, post, startForegroundDaemon } from '../helpers/daemon.js'
import { deleteQueues, sqsNamespace } from '../helpers/sqs-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const prefixes: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  await killDaemons()
  wal.cleanup()
  await deleteQueues(prefixes.splice(0))
})

async function namespace(options: Parameters<typeof sqsNamespace>[1] = {}): Promise<void> {
  prefixes.push(await sqsNamespace(wal, options))
}

/** Part i of a transaction: 20 keys, 3 tables, 7 rows per table, so rows are written more than once. */
function part(txn: string, i: number): Record<string, unknown> {
  return { txn, key: `k${i % 20}`, payload: { op: 'put', table: `t${i % 3}`, key: { id: i % 7 }, item: { id: i % 7, seq: i } } }
}

function expectedState(parts: number): Map<string, unknown> {
  const state = new Map<string, unknown>()
  for (let i = 0; i < parts; i++) state.set(`t${i % 3}/${i % 7}`, { id: i % 7, seq: i })
  return state
}

function kvState(): Map<string, unknown> {
  return new Map(kvItems(wal.stateDir, 'orders').map((row) => [`${row.tbl}/${JSON.parse(row.pk)[0][1]}`, JSON.parse(row.item!) as unknown]))
}

const storePath = (): string => join(wal.stateDir, 'sqs-state', 'orders.sqlite')

function txnProgress(txn: string): { applied_seq: number; state: string } | undefined {
  try {
    const db = new DatabaseSync(storePath(), { readOnly: true, timeout: 5000 })
    try {
      return db.prepare('SELECT applied_seq, state FROM txn_progress WHERE txn = ?').get(txn) as { applied_seq: number; state: string } | undefined
    } finally {
      db.close()
    }
  } catch {
    return undefined
  }
}

function spawnConsumer(args: string[]): { kill(signal: NodeJS.Signals): void; closed: Promise<unknown> } {
  const child = wal.spawn(['consume', '-n', 'orders', ...args])
  child.stdout!.resume()
  child.stderr!.resume()
  return { kill: (signal) => child.kill(signal), closed: new Promise((resolve) => child.on('close', resolve)) }
}

describe('transactions on an SQS namespace', () => {
  it('keeps the parts in the state store, enqueues only the marker, and applies 50 parts over 3 tables exactly with consumers in 3 shards', async () => {
    await namespace({ shards: 3 })
    const producer = wal.spawn(['produce', '-n', 'orders', '--json'])
    const acks: Array<Record<string, unknown>> = []
    let buffer = ''
    producer.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buffer += d
      const lines = buffer.split('\n')
      buffer = lines.pop()!
      for (const line of lines) if (line.trim() !== '') acks.push(JSON.parse(line) as Record<string, unknown>)
    })
    producer.stderr!.resume()
    const produced = new Promise<number | null>((resolve) => producer.on('close', resolve))
    producer.stdin!.write(ndjson(Array.from({ length: 50 }, (_, i) => part('order-7', i))))
    await waitFor(() => acks.length === 50, { timeoutMs: 60_000 })
    expect(acks.map((a) => a.txnSeq)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(acks.every((a) => a.durable === true && a.txn === 'order-7')).toBe(true)
    // Nothing of it is in the queues: tail sees no message, consumers apply nothing.
    expect(jsonLines((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)).toEqual([])
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect(kvItems(wal.stateDir, 'orders')).toEqual([])
    const open = JSON.parse((await wal.run(['explain', '-n', 'orders', 'order-7', '--json'])).stdout) as { state: string; parts: unknown[]; marker: unknown; targets: Array<{ status: string }> }
    expect(open).toMatchObject({ state: 'open', marker: null, targets: [expect.objectContaining({ status: 'open' })] })
    expect(open.parts).toHaveLength(50)

    const shards = [0, 1, 2].map((i) => spawnConsumer(['--shard', `${i}/3`]))
    producer.stdin!.end(ndjson([{ txn: 'order-7', commit: true }]))
    expect(await produced).toBe(0)
    expect(acks.at(-1)).toMatchObject({ txn: 'order-7', commit: true, parts: 50, durable: true })
    // Only the marker is in a queue.
    await waitFor(() => txnProgress('order-7')?.state === 'applied', { timeoutMs: 90_000 })
    for (const s of shards) s.kill('SIGTERM')
    await Promise.all(shards.map((s) => s.closed))
    expect(kvState()).toEqual(expectedState(50))
    const done = JSON.parse((await wal.run(['explain', '-n', 'orders', 'order-7', '--json'])).stdout) as { state: string; marker: { id: string }; targets: unknown[] }
    expect(done.state).toBe('committed')
    expect(done.marker.id).toBe(acks.at(-1)!.id)
    expect(done.targets).toEqual([expect.objectContaining({ target: 'kv', status: 'applied', partsApplied: 50 })])
  }, 180_000)

  it('resumes after the last part made durable when its consumer is killed with SIGKILL mid-transaction, and ends exact', async () => {
    await namespace({ settings: { visibilityTimeoutSeconds: 5 } })
    const produced = await wal.run(['produce', '-n', 'orders', '--txn', '--json'], {
      input: ndjson(Array.from({ length: 50 }, (_, i) => {
        const { txn: _txn, ...line } = part('x', i)
        return line
      })),
    })
    expect(produced.code, produced.stderr).toBe(0)
    const marker = jsonLines<{ txn: string; commit?: boolean; parts?: number }>(produced.stdout).at(-1)!
    expect(marker).toMatchObject({ commit: true, parts: 50 })
    const txn = marker.txn

    const consumer = spawnConsumer(['--rate', '10/s'])
    await waitFor(() => (txnProgress(txn)?.applied_seq ?? -1) >= 15, { timeoutMs: 60_000 })
    consumer.kill('SIGKILL')
    await consumer.closed
    const atKill = txnProgress(txn)!
    expect(atKill.state).toBe('applying')
    expect(atKill.applied_seq).toBeLessThan(49)
    const midway = JSON.parse((await wal.run(['explain', '-n', 'orders', txn, '--json'])).stdout) as { targets: Array<{ status: string; partsApplied: number }> }
    expect(midway.targets[0]).toMatchObject({ status: 'applying', partsApplied: atKill.applied_seq + 1 })

    // The marker comes back after its visibility timeout; the next consumer resumes.
    await waitFor(async () => {
      await wal.run(['consume', '-n', 'orders', '--until-idle'])
      return txnProgress(txn)?.state === 'applied'
    }, { timeoutMs: 60_000, intervalMs: 500 })
    expect(txnProgress(txn)).toEqual({ applied_seq: 49, state: 'applied' })
    expect(kvState()).toEqual(expectedState(50))
  }, 180_000)

  it('aborts a transaction whose marker never came: nothing applied, explain and the DLQ say aborted, a late marker is refused', async () => {
    await namespace({ settings: { txnTimeoutMs: 8000 } })
    const produced = await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 5 }, (_, i) => part('lost-1', i))) })
    expect(produced.code).toBe(0)
    expect(produced.stderr).toMatch(/has no marker in this input/)
    const early = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(early.code).toBe(0)

    await waitFor(async () => JSON.parse((await wal.run(['explain', '-n', 'orders', 'lost-1', '--json'])).stdout).detail.includes('past txnTimeoutMs'), { timeoutMs: 30_000, intervalMs: 200 })
    const late = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(late.code).toBe(8)
    expect(JSON.parse(late.stdout).targets[0]).toMatchObject({ txnAborted: 1, applied: 0 })
    expect(kvItems(wal.stateDir, 'orders')).toEqual([])

    const report = JSON.parse((await wal.run(['explain', '-n', 'orders', 'lost-1', '--json'])).stdout) as { state: string; parts: unknown[]; targets: Array<{ status: string }> }
    expect(report.state).toBe('aborted')
    expect(report.parts).toHaveLength(5)
    expect(report.targets[0]!.status).toBe('aborted')
    const dlq = async (): Promise<Array<{ errorClass: string; code: string; key: string; message: string }>> => JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout).entries
    const entries = await dlq()
    expect(entries).toEqual([expect.objectContaining({ errorClass: 'txn-aborted', code: 'WAL_TXN_ABORTED', key: 'lost-1' })])
    expect(entries[0]!.message).toMatch(/no completion marker within txnTimeoutMs \(8000 ms\).*none of its 5 parts is applied/)
    // Another consume files nothing twice.
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect(await dlq()).toHaveLength(1)

    const again = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([part('lost-1', 5), { txn: 'lost-1', commit: true }]) })
    expect(again.code).toBe(4)
    const answers = jsonLines<{ durable: boolean; error?: { code: string; message: string } }>(again.stdout)
    expect(answers[0]!.error).toMatchObject({ code: 'WAL_TXN_REFUSED', message: expect.stringMatching(/aborted/) })
    expect(answers[1]!.durable).toBe(false)
    await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expect(kvItems(wal.stateDir, 'orders')).toEqual([])
  }, 120_000)

  it('over HTTP, keeps the parts of several requests in order and applies them once committed', async () => {
    await namespace({ shards: 2 })
    const config = JSON.parse(readFileSync(join(wal.cwd, '.walrc.json'), 'utf8')) as Record<string, unknown>
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ ...config, daemon: { port: 0 } }))
    const daemon = await startForegroundDaemon(wal)
    const base = `${daemon.url}/v1/namespaces/orders/transactions/h-1`
    const body = (from: number): unknown[] => Array.from({ length: 5 }, (_, i) => part('ignored', from + i)).map(({ txn: _t, ...p }) => p)
    const first = await post(`${base}/parts`, body(0))
    expect(first.status, JSON.stringify(first.body)).toBe(200)
    expect((await post(`${base}/parts`, body(5))).status).toBe(200)
    // A commit that counts more parts than were written is refused, and the transaction stays open.
    const wrong = await post(`${base}/commit?parts=11`, {})
    expect(wrong.status, JSON.stringify(wrong.body)).toBe(400)
    expect(JSON.stringify(wrong.body)).toMatch(/closes 11 parts, but the state store holds 10/)
    expect(kvItems(wal.stateDir, 'orders')).toEqual([])
    const committed = await post(`${base}/commit?parts=10`, {})
    expect(committed.status, JSON.stringify(committed.body)).toBe(200)
    await waitFor(() => txnProgress('h-1')?.state === 'applied', { timeoutMs: 60_000 })
    expect(kvState()).toEqual(expectedState(10))
    expect(await daemon.stop()).toBe(0)
  }, 120_000)
})
