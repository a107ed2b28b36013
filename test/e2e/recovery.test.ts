import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { writeSqsConfig } from '../helpers/sqs-namespace.js'
import { committedOffsets, leaseRows } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

function put(id: number | string, item: Record<string, unknown>): Record<string, unknown> {
  return { op: 'put', table: 'users', key: { id }, item: { id, ...item } }
}

interface Summary {
  targets: Array<{ target: string; applied: number; scheduled: number; deadLettered: number; lag: number }>
}

describe('tail --json | produce: the flags win over the nulls tail writes', () => {
  it('sends every copy to the --target only, not before the --delay', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' }, out: { type: 'file', path: outPath } } } } }))
    const input = Array.from({ length: 5 }, (_, i) => ({ key: `u${i}`, payload: put(i, { v: i }) }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(input) })).code).toBe(0)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect(readFileSync(outPath, 'utf8').trim().split('\n')).toHaveLength(5)

    const tailed = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(jsonLines<Envelope>(tailed.stdout).every((r) => r.target === null && r.notBefore === null)).toBe(true)
    const before = Date.now()
    const copied = await wal.run(['produce', '-n', 'orders', '--target', 'store', '--delay', '1m'], { input: tailed.stdout })
    expect(copied.stderr).toBe('')
    expect(copied.code).toBe(0)

    const copies = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).filter((r) => r.target !== null || r.notBefore !== null)
    expect(copies).toHaveLength(5)
    for (const copy of copies) {
      expect(copy.target).toBe('store')
      expect(Date.parse(copy.notBefore!) - before).toBeGreaterThanOrEqual(60_000)
    }
    // Consuming now: the copies wait for their time at the store, and the file target gets none of them.
    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(result.code).toBe(0)
    const summary = JSON.parse(result.stdout) as Summary
    expect(summary.targets.find((t) => t.target === 'store')).toMatchObject({ applied: 0, scheduled: 5 })
    expect(summary.targets.find((t) => t.target === 'out')).toMatchObject({ applied: 0, scheduled: 0 })
    expect(readFileSync(outPath, 'utf8').trim().split('\n')).toHaveLength(5)
  })

  it('keeps a line\'s own non-null target and notBefore over the flags', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' }, other: { type: 'kv', path: join(wal.dir, 'other.db') } } } } }))
    const lines = [
      { key: 'a', payload: 1, target: 'other', notBefore: '2030-01-01T00:00:00Z' },
      { key: 'b', payload: 2, target: null, notBefore: null },
    ]
    expect((await wal.run(['produce', '-n', 'orders', '--target', 'store', '--at', '2031-05-06T07:08:09Z'], { input: ndjson(lines) })).code).toBe(0)
    const byKey = Object.fromEntries(jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).map((r) => [r.key, r]))
    expect(byKey.a).toMatchObject({ target: 'other', notBefore: '2030-01-01T00:00:00.000Z' })
    expect(byKey.b).toMatchObject({ target: 'store', notBefore: '2031-05-06T07:08:09.000Z' })
  })
})

interface KvItem {
  tbl: string
  pk: string
  item: string | null
  deleted: number
}

/** The live items of a kv store file, as table:key → item. */
function storeState(path: string): Record<string, unknown> {
  const db = new DatabaseSync(path, { readOnly: true, timeout: 5000 })
  try {
    const rows = db.prepare('SELECT tbl, pk, item, deleted FROM items ORDER BY tbl, pk').all() as unknown as KvItem[]
    return Object.fromEntries(rows.filter((r) => r.deleted === 0).map((r) => [`${r.tbl}:${r.pk}`, JSON.parse(r.item!)]))
  } finally {
    db.close()
  }
}

interface Audit {
  audit: Array<{ actor: string; action: string; details: Record<string, unknown> }>
}

interface Plan {
  executed: boolean
  plan: Array<{ partition: number; current: number; next: number; reapplied: number; skipped: number; owner: string | null }>
}

describe('recovery: restore a backup, rewind the target, skip the bad mutation', () => {
  it('brings the store to the state it would have without the bad mutation, and says so in explain and the audit', async () => {
    const storePath = join(wal.dir, 'store.db')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 4, targets: { store: { type: 'kv', path: storePath } } } } }))
    const expected = new Map<string, Record<string, unknown> | null>()
    const first = Array.from({ length: 100 }, (_, i) => ({ key: `u${i}`, payload: put(i, { v: 0 }) }))
    for (const line of first) expected.set(`users:[["id",${(line.payload.key as { id: number }).id}]]`, line.payload.item as Record<string, unknown>)
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(first) })).code).toBe(0)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)

    // The snapshot, at T.
    const snapshot = join(wal.dir, 'snapshot.db')
    new DatabaseSync(storePath).exec(`VACUUM INTO '${snapshot}'`)
    await new Promise((resolve) => setTimeout(resolve, 20))
    const t = new Date().toISOString()
    await new Promise((resolve) => setTimeout(resolve, 20))

    // 500 more, one of them bad: it deletes a user nothing writes again.
    const more: Array<{ key: string; payload: Record<string, unknown> }> = []
    for (let i = 0; i < 500; i++) {
      if (i === 250) more.push({ key: 'u42', payload: { op: 'delete', table: 'users', key: { id: 42 } } })
      else {
        const id = 100 + (i % 150)
        more.push({ key: `u${id}`, payload: put(id, { v: i }) })
      }
    }
    const acks = jsonLines<{ id: string }>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(more) })).stdout)
    expect(acks).toHaveLength(500)
    const bad = acks[250]!.id
    for (const [i, line] of more.entries()) if (i !== 250) expected.set(`users:[["id",${(line.payload.key as { id: number }).id}]]`, line.payload.item as Record<string, unknown>)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(0)
    expect(storeState(storePath)['users:[["id",42]]']).toBeUndefined()

    // Restore the backup over the store.
    for (const suffix of ['', '-wal', '-shm']) rmSync(storePath + suffix, { force: true })
    copyFileSync(snapshot, storePath)

    const dry = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'store', '--to-time', t, '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    const plan = JSON.parse(dry.stdout) as Plan
    expect(plan.executed).toBe(false)
    expect(plan.plan.reduce((n, r) => n + r.reapplied, 0)).toBe(500)
    // A dry run changes nothing: consuming now applies nothing.
    const idle = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(idle.targets[0]!.applied).toBe(0)

    const executed = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'store', '--to-time', t, '--execute'])
    expect(executed.code, executed.stderr).toBe(0)
    expect(executed.stdout).toContain('500 mutations to apply again')
    const skipped = await wal.run(['skip', bad, '-n', 'orders', '--reason', 'deleted a live user'])
    expect(skipped.code, skipped.stderr).toBe(0)

    const replay = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    expect(JSON.parse(replay.stdout)).toMatchObject({ targets: [{ target: 'store', applied: 499, skipped: 1, lag: 0 }] })
    const want = Object.fromEntries([...expected].filter(([, v]) => v !== null))
    expect(storeState(storePath)).toEqual(want)
    expect(storeState(storePath)['users:[["id",42]]']).toEqual({ id: 42, v: 0 })

    const explained = JSON.parse((await wal.run(['explain', bad, '--json'])).stdout) as { targets: Array<{ target: string; status: string; detail: string }> }
    expect(explained.targets).toEqual([expect.objectContaining({ target: 'store', status: 'skipped' })])
    expect(explained.targets[0]!.detail).toContain('deleted a live user')
    const audit = JSON.parse((await wal.run(['dlq', 'audit', '-n', 'orders', '--json'])).stdout) as Audit
    expect(audit.audit.map((a) => a.action)).toEqual(['offsets-reset', 'skip'])
    expect(audit.audit[0]!.details).toMatchObject({ target: 'store', to: `--to-time ${t}` })
    expect(audit.audit[1]!.details).toMatchObject({ ids: [bad], target: null, reason: 'deleted a live user' })
  })

  it('skips at one target only, and un-skips', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' }, out: { type: 'file', path: outPath } } } } }))
    const acks = jsonLines<{ id: string }>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([{ key: 'a', payload: put('a', {}) }, { key: 'b', payload: put('b', {}) }]) })).stdout)
    expect((await wal.run(['skip', acks[0]!.id, acks[1]!.id, '-n', 'orders', '--target', 'out'])).code).toBe(0)
    expect((await wal.run(['skip', '--undo', acks[1]!.id, '-n', 'orders', '--target', 'out'])).code).toBe(0)
    const listed = JSON.parse((await wal.run(['skip', '--list', '-n', 'orders', '--json'])).stdout) as { skips: Array<{ id: string; target: string | null }> }
    expect(listed.skips.map((s) => [s.id, s.target])).toEqual([[acks[0]!.id, 'out']])
    expect((await wal.run(['skip', '--list', '-n', 'orders', '--target', 'store'])).stdout).toContain('no mutations of namespace "orders" are marked to skip')
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets.map((t) => [t.target, t.applied, (t as unknown as { skipped: number }).skipped])).toEqual([
      ['store', 2, 0],
      ['out', 1, 1],
    ])
    expect(readFileSync(outPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key)).toEqual(['b'])
  })

  it('refuses ids that are not mutation ids, and an unknown target', async () => {
    const notId = await wal.run(['skip', 'x\u001b[31m', '-n', 'default'])
    expect(notId.code).toBe(2)
    expect(notId.stderr).not.toContain('\u001b')
    const unknown = await wal.run(['offsets', 'reset', '--target', 'nope', '--to-end'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('has no target "nope"')
    const noTarget = await wal.run(['offsets', 'reset', '--to-end'])
    expect(noTarget.code).toBe(2)
    expect(noTarget.stderr).toContain('name it with --target')
  })
})

describe('offsets reset while a consumer runs', () => {
  it('is refused naming the owner, and with --force fences it: the consumer continues from the new offset', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 1, targets: { out: { type: 'file', path: outPath } } } } }))
    const lines = Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, payload: { i } }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(lines) })).code).toBe(0)
    const consumer = wal.spawn(['consume', '-n', 'orders'])
    const linesOut = (): string[] => (existsSync(outPath) ? readFileSync(outPath, 'utf8').trim().split('\n').filter(Boolean) : [])
    await waitFor(() => linesOut().length === 10 && committedOffsets(wal.stateDir, 'orders')[0]?.next_offset === 10, { timeoutMs: 60_000 })
    const owner = leaseRows(wal.stateDir, 'orders')[0]!.owner

    const refused = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'out', '--to-offset', '0:4', '--execute'])
    expect(refused.code).toBe(9)
    expect(refused.stderr).toContain(owner)
    expect(refused.stderr).toContain('--force')
    expect(committedOffsets(wal.stateDir, 'orders')[0]!.next_offset).toBe(10)

    const forced = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'out', '--to-offset', '0:4', '--execute', '--force', '--json'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(JSON.parse(forced.stdout)).toMatchObject({ executed: true, fenced: [{ partition: 0, owner }] })
    // The running consumer applies offsets 4..9 again, and commits up to the end again.
    await waitFor(() => linesOut().length === 16 && committedOffsets(wal.stateDir, 'orders')[0]?.next_offset === 10, { timeoutMs: 60_000 })
    expect(linesOut().slice(10).map((l) => (JSON.parse(l) as { payload: { i: number } }).payload.i)).toEqual([4, 5, 6, 7, 8, 9])
    consumer.kill('SIGTERM')
    await new Promise((resolve) => consumer.once('exit', resolve))
    const audit = JSON.parse((await wal.run(['dlq', 'audit', '-n', 'orders', '--json'])).stdout) as Audit
    expect(audit.audit).toEqual([expect.objectContaining({ action: 'offsets-reset', details: expect.objectContaining({ fenced: [{ partition: 0, owner }] }) })])
  })
})

describe('offsets reset --force on a frozen consumer', () => {
  it('fences it: woken up, it commits nothing of what it did meanwhile and applies again from the new offset', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 1, targets: { out: { type: 'file', path: outPath } } } } }))
    const produceRange = async (from: number, to: number): Promise<void> => {
      expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: to - from }, (_, i) => ({ key: `k${from + i}`, payload: { i: from + i } }))) })).code).toBe(0)
    }
    await produceRange(0, 10)
    // A long lease: frozen, the consumer still holds the partition.
    const consumer = wal.spawn(['consume', '-n', 'orders', '--lease-ttl', '30s'])
    const applied = (): number[] => (existsSync(outPath) ? readFileSync(outPath, 'utf8').trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { i: number } }).payload.i) : [])
    await waitFor(() => applied().length === 10 && committedOffsets(wal.stateDir, 'orders')[0]?.next_offset === 10, { timeoutMs: 60_000 })
    const owner = leaseRows(wal.stateDir, 'orders')[0]!.owner
    consumer.kill('SIGSTOP')
    try {
      await produceRange(10, 15)
      const refused = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'out', '--to-offset', '0:4', '--execute'])
      expect(refused.code).toBe(9)
      expect(refused.stderr).toContain(owner)
      const forced = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'out', '--to-offset', '0:4', '--execute', '--force'])
      expect(forced.code, forced.stderr).toBe(0)
      expect(committedOffsets(wal.stateDir, 'orders')[0]!.next_offset).toBe(4)
    } finally {
      consumer.kill('SIGCONT')
    }
    // Woken, it may apply 10..14 once more under its old lease, but commits none of it: it starts over
    // from 4, applies 4..14, and only then is the partition committed to the end.
    await waitFor(() => committedOffsets(wal.stateDir, 'orders')[0]?.next_offset === 15, { timeoutMs: 60_000 })
    const after = applied().slice(10)
    const fromReset = after.slice(after.lastIndexOf(4))
    expect(fromReset).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    consumer.kill('SIGTERM')
    await new Promise((resolve) => consumer.once('exit', resolve))
  })
})

describe('offsets and skip on an SQS namespace', () => {
  it('exit 2 and say what SQS allows instead', async () => {
    writeSqsConfig(wal, 'wal-not-contacted')
    for (const args of [
      ['offsets', 'show', '-n', 'orders'],
      ['offsets', 'reset', '-n', 'orders', '--target', 'kv', '--to-beginning', '--execute'],
    ]) {
      const result = await wal.run([...args, '--json'])
      expect(result.code).toBe(2)
      const { error } = JSON.parse(result.stderr) as { error: { code: string; message: string; suggestions: string[] } }
      expect(error.code).toBe('WAL_OFFSETS_UNSUPPORTED')
      expect(error.message).toContain('no offsets')
      expect(error.suggestions.join(' ')).toContain('wal dlq replay')
    }
    const skipped = await wal.run(['skip', '01M80K6XFDG62PY7DFWNXXTEAH', '-n', 'orders', '--json'])
    expect(skipped.code).toBe(2)
    expect((JSON.parse(skipped.stderr) as { error: { code: string } }).error.code).toBe('WAL_SKIP_UNSUPPORTED')
  })
})

describe('offsets reset plans', () => {
  it('moves only the partitions named, clamps --shift-by to the log, and refuses bad positions with exit 2', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' } } } } }))
    const acks = jsonLines<{ partition: number }>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, payload: i }))) })).stdout)
    const high = [0, 1].map((p) => acks.filter((a) => a.partition === p).length)
    const plan = async (...args: string[]): Promise<Plan['plan']> => {
      const result = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'store', '--json', ...args])
      expect(result.code, result.stderr).toBe(0)
      return (JSON.parse(result.stdout) as Plan).plan
    }
    // Nothing consumed yet: forward to the end passes everything by.
    expect(await plan('--to-end')).toEqual([0, 1].map((p) => ({ partition: p, current: 0, next: high[p], reapplied: 0, skipped: high[p], owner: null })))
    expect(await plan('--to-offset', '1:2')).toEqual([{ partition: 1, current: 0, next: 2, reapplied: 0, skipped: 2, owner: null }])
    expect((await plan('--shift-by', '1000')).map((r) => r.next)).toEqual(high)
    expect((await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'store', '--to-end', '--execute'])).code).toBe(0)
    expect((await plan('--shift-by=-3')).map((r) => [r.next, r.reapplied])).toEqual(high.map((h) => [h - 3, 3]))
    expect((await plan('--shift-by=-1000')).map((r) => r.next)).toEqual([0, 0])
    expect((await plan('--to-beginning')).map((r) => r.reapplied)).toEqual(high)

    for (const [args, message] of [
      [['--to-offset', '0:999'], `partition 0 holds offsets 0..${high[0]}`],
      [['--to-offset', '5:1'], 'not PARTITION:OFFSET with a partition of the log (0..1)'],
      [['--to-offset', '0:1,0:2'], 'names partition 0 twice'],
      [['--to-offset', '0:x\u001b[2J'], 'not PARTITION:OFFSET'],
      [['--shift-by', 'ten'], 'is not a whole number'],
      [['--to-time', 'yesterday-ish'], '--to-time "yesterday-ish" is not a time'],
      [['--to-end', '--to-beginning'], 'give only one of'],
      [[], 'say where to move the offsets'],
    ] as Array<[string[], string]>) {
      const result = await wal.run(['offsets', 'reset', '-n', 'orders', '--target', 'store', ...args, '--execute'])
      expect(result.code, args.join(' ')).toBe(2)
      expect(result.stderr).toContain(message)
      expect(result.stderr).not.toContain('\u001b')
    }
    // None of the refused ones changed anything.
    expect(committedOffsets(wal.stateDir, 'orders').map((o) => o.next_offset)).toEqual(high)
  })
})
