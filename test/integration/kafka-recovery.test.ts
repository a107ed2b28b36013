// The recovery story on a Kafka namespace: group offsets moved back, a bad mutation skipped.
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { deleteTopics, kafkaNamespace } from '../helpers/kafka-namespace.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

const put = (id: number, v: number) => ({ op: 'put', table: 'users', key: { id }, item: { id, v } })

function storeState(path: string): Record<string, unknown> {
  const db = new DatabaseSync(path, { readOnly: true, timeout: 5000 })
  try {
    const rows = db.prepare('SELECT tbl, pk, item, deleted FROM items').all() as Array<{ tbl: string; pk: string; item: string; deleted: number }>
    return Object.fromEntries(rows.filter((r) => r.deleted === 0).map((r) => [`${r.tbl}:${r.pk}`, JSON.parse(r.item)]))
  } finally {
    db.close()
  }
}

describe('recovery on a Kafka namespace', () => {
  it('rewinds the target group to a time, skips the bad mutation, and reaches the state without it', async () => {
    const storePath = join(wal.dir, 'store.db')
    topics.push(await kafkaNamespace(wal, { partitions: 2, targets: { store: { type: 'kv', path: storePath } } }))
    const expected = new Map<number, unknown>()
    const first = Array.from({ length: 30 }, (_, i) => ({ key: `u${i}`, payload: put(i, 0) }))
    first.forEach((l) => expected.set(l.payload.key.id, l.payload.item))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(first) })).code).toBe(0)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    const snapshot = join(wal.dir, 'snapshot.db')
    new DatabaseSync(storePath).exec(`VACUUM INTO '${snapshot}'`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const t = new Date().toISOString()
    await new Promise((resolve) => setTimeout(resolve, 50))

    const more: Array<{ key: string; payload: Record<string, unknown> }> = []
    for (let i = 0; i < 100; i++) {
      if (i === 50) more.push({ key: 'u7', payload: { op: 'delete', table: 'users', key: { id: 7 } } })
      else more.push({ key: `u${30 + (i % 40)}`, payload: put(30 + (i % 40), i) })
    }
    const acks = jsonLines<{ id: string }>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(more) })).stdout)
    const bad = acks[50]!.id
    more.forEach((l, i) => {
      if (i !== 50) expected.set((l.payload.key as { id: number }).id, l.payload.item)
    })
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    for (const suffix of ['', '-wal', '-shm']) rmSync(storePath + suffix, { force: true })
    copyFileSync(snapshot, storePath)

    const dry = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'store', '--to-time', t, '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect((JSON.parse(dry.stdout) as { plan: Array<{ reapplied: number }> }).plan.reduce((n, r) => n + r.reapplied, 0)).toBe(100)
    const executed = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'store', '--to-time', t, '--execute'])
    expect(executed.code, executed.stderr).toBe(0)
    expect((await wal.run(['skip', bad, '-n', 'orders', '--reason', 'bad delete'])).code).toBe(0)
    const replay = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    expect(JSON.parse(replay.stdout)).toMatchObject({ targets: [{ target: 'store', applied: 99, skipped: 1, lag: 0 }] })
    expect(storeState(storePath)).toEqual(Object.fromEntries([...expected].map(([id, item]) => [`users:[["id",${id}]]`, item])))

    const explained = JSON.parse((await wal.run(['explain', bad, '-n', 'orders', '--json'])).stdout) as { targets: Array<{ status: string }> }
    expect(explained.targets[0]!.status).toBe('skipped')
    const audit = JSON.parse((await wal.run(['dlq', 'audit', '-n', 'orders', '--json'])).stdout) as { audit: Array<{ action: string }> }
    expect(audit.audit.map((a) => a.action)).toEqual(['offsets-reset', 'skip'])
  })

  it('refuses a reset while a consumer is a member of the target group, naming it; --force has the consumer carry it out', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    topics.push(await kafkaNamespace(wal, { partitions: 2, targets: { out: { type: 'file', path: outPath } } }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, payload: { i } }))) })).code).toBe(0)
    const consumer = wal.spawn(['consume', '-n', 'orders'])
    const linesOut = (): string[] => (existsSync(outPath) ? readFileSync(outPath, 'utf8').trim().split('\n').filter(Boolean) : [])
    type Shown = { offsets: Array<{ partition: number; owner: string | null; lag: number; committed: number; low: number; high: number }> }
    const show = async (): Promise<Shown> => JSON.parse((await wal.run(['offsets', 'show', '-n', 'orders', '--json'])).stdout) as Shown
    const shown = await waitFor(
      async () => {
        const out = await show()
        return linesOut().length === 10 && out.offsets.every((o) => o.owner !== null && o.lag === 0) ? out : undefined
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    )
    const owner = shown!.offsets[0]!.owner!
    const refused = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'out', '--to-beginning', '--execute'])
    expect(refused.code).toBe(9)
    expect(refused.stderr).toContain(owner)
    expect(refused.stderr).toContain('--force')

    const forced = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'out', '--to-beginning', '--execute', '--force', '--json'])
    expect(forced.code, forced.stderr).toBe(0)
    expect((JSON.parse(forced.stdout) as { fenced: Array<{ owner: string }> }).fenced.map((f) => f.owner)).toEqual([owner, owner])
    // The running consumer applies everything again from the beginning, and commits up to the end again.
    await waitFor(async () => linesOut().length === 20 && (await show()).offsets.every((o) => o.lag === 0), { timeoutMs: 90_000, intervalMs: 500 })
    const keys = linesOut().map((l) => (JSON.parse(l) as { key: string }).key)
    expect(keys.slice(10).sort()).toEqual(keys.slice(0, 10).sort())
    consumer.kill('SIGTERM')
    await new Promise((resolve) => consumer.once('exit', resolve))

    const after = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'out', '--to-beginning', '--execute', '--json'])
    expect(after.code, after.stderr).toBe(0)
    expect((await show()).offsets.every((o) => o.committed === o.low)).toBe(true)
    const audit = JSON.parse((await wal.run(['dlq', 'audit', '-n', 'orders', '--json'])).stdout) as { audit: Array<{ action: string; details: { fenced?: unknown[] } }> }
    expect(audit.audit.map((a) => [a.action, a.details.fenced?.length ?? 0])).toEqual([
      ['offsets-reset', 2],
      ['offsets-reset', 0],
    ])
  })
})
