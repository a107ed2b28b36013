import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { authHeaders, killDaemons, startForegroundDaemon } from '../helpers/daemon.js'
import { deadLetters, kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  await killDaemons()
  wal.cleanup()
})

const put = (id: number) => ({ op: 'put', table: 'users', key: { id }, item: { id, name: `user ${id}` } })

/**
 * Rows written straight into the embedded log, as an older wal, another tool or a damaged byte would
 * leave them: each is something no reader can take as a mutation.
 */
function plantPoison(stateDir: string, namespace = 'default'): Array<{ id: string; key: string }> {
  const db = new DatabaseSync(join(stateDir, 'embedded', `${namespace}.db`))
  const insert = db.prepare(
    'INSERT INTO records (partition, offset, id, key, appended_at, created_at, not_before, target, idempotency_key, attempts, headers, payload, failures, created_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  )
  const planted = [
    { id: '01M80K6XFDG62PY7DFWNXXTEA1', key: 'p-created', createdAt: 4611686018427387904n, notBefore: null, attempts: 0, headers: null, payload: '1', failures: null },
    { id: '01M80K6XFDG62PY7DFWNXXTEA2', key: 'p-wedge', createdAt: Date.now(), notBefore: 9000000000000000, attempts: 0, headers: null, payload: '1', failures: null },
    { id: '01M80K6XFDG62PY7DFWNXXTEA3', key: 'p-json', createdAt: Date.now(), notBefore: null, attempts: 0, headers: null, payload: 'not json at all', failures: null },
    { id: '01M80K6XFDG62PY7DFWNXXTEA4', key: 'p-headers', createdAt: Date.now(), notBefore: null, attempts: 0, headers: '["a","b"]', payload: '1', failures: null },
    { id: '01M80K6XFDG62PY7DFWNXXTEA5', key: 'p-attempts', createdAt: Date.now(), notBefore: null, attempts: 2n ** 62n, headers: null, payload: '1', failures: null },
    { id: '01M80K6XFDG62PY7DFWNXXTEA6', key: 'p-failures', createdAt: Date.now(), notBefore: null, attempts: 1, headers: null, payload: '1', failures: '[{"at":"yesterday"}]' },
    { id: '01M80K6XFDG62PY7DFWNXXTEA7', key: 'p-deep', createdAt: Date.now(), notBefore: null, attempts: 0, headers: null, payload: '['.repeat(5000) + ']'.repeat(5000), failures: null },
    { id: '../../etc/passwd', key: 'p-id', createdAt: Date.now(), notBefore: null, attempts: 0, headers: null, payload: '1', failures: null },
    { id: '01M80K6XFDG62PY7DFWNXXTEA8', key: 'p-header-value', createdAt: Date.now(), notBefore: null, attempts: 0, headers: '{"n":1}', payload: '1', failures: null },
  ]
  db.exec('BEGIN IMMEDIATE')
  for (const p of planted) {
    const { next_offset: offset } = db.prepare('SELECT next_offset FROM partitions WHERE partition = 0').get() as { next_offset: number }
    insert.run(0, offset, p.id, p.key, Date.now(), p.createdAt, p.notBefore, null, null, p.attempts, p.headers, p.payload, p.failures, null)
    db.prepare('UPDATE partitions SET next_offset = ? WHERE partition = 0').run(offset + 1)
  }
  db.exec('COMMIT')
  db.close()
  return planted
}

describe('a record in the embedded log that cannot be decoded', () => {
  it('is dead-lettered as poison by consume, while the good records before and after it are applied', async () => {
    expect((await wal.run(['produce'], { input: ndjson([1, 2, 3].map((id) => ({ key: `u${id}`, payload: put(id) }))) })).code).toBe(0)
    const planted = plantPoison(wal.stateDir)
    expect((await wal.run(['produce'], { input: ndjson([4, 5].map((id) => ({ key: `u${id}`, payload: put(id) }))) })).code).toBe(0)

    const result = await wal.run(['consume', '--until-idle', '--json'])
    expect(result.stderr).not.toMatch(/\n\s+at |RangeError|Value is too large/)
    // The documented code of a run that dead-lettered something (README: exit codes).
    expect(result.code).toBe(8)
    expect(JSON.parse(result.stdout)).toMatchObject({ targets: [{ target: 'kv', applied: 5, deadLettered: planted.length, lag: 0 }] })
    expect(kvItems(wal.stateDir).map((r) => r.pk).sort()).toEqual([1, 2, 3, 4, 5].map((id) => `[["id",${id}]]`))
    const dead = deadLetters(wal.stateDir)
    expect(dead.map((d) => d.key).sort()).toEqual(planted.map((p) => p.key).sort())
    for (const d of dead) {
      expect(d).toMatchObject({ target: 'kv', error_class: 'poison', code: 'WAL_RECORD_POISON' })
      expect(d.envelope).toMatch(/"payloadEncoding":"base64"/)
    }
    expect(dead.find((d) => d.key === 'p-wedge')).toBeDefined()

    // Consuming again finds nothing to do: the partition moved past them.
    const again = await wal.run(['consume', '--until-idle', '--json'])
    expect(JSON.parse(again.stdout)).toMatchObject({ targets: [{ applied: 0, deadLettered: 0, lag: 0 }] })
  })

  it('is printed marked by tail, as a JSON line that parses (with the stored bytes) under --json', async () => {
    expect((await wal.run(['produce'], { input: ndjson([{ key: 'a', payload: 1 }]) })).code).toBe(0)
    const planted = plantPoison(wal.stateDir)
    const json = await wal.run(['tail', '--json'])
    expect(json.code).toBe(0)
    const lines = jsonLines<{ key: string; error?: string; raw?: string; payload?: unknown }>(json.stdout)
    expect(lines).toHaveLength(1 + planted.length)
    const poison = lines.filter((l) => l.error !== undefined)
    expect(poison.map((l) => l.key).sort()).toEqual(planted.map((p) => p.key).sort())
    for (const l of poison) {
      expect(l.error).toMatch(/cannot decode the record at 0:\d+ of the embedded log/)
      expect(Buffer.from(l.raw!, 'base64').toString()).toContain(`"key":"${l.key}"`)
    }
    // Copying tail --json into produce refuses the poison lines by number and takes the rest.
    const copy = await wal.run(['produce', '-n', 'copy'], { input: json.stdout })
    expect(copy.code).toBe(4)
    expect(copy.stderr).toMatch(new RegExp(`${planted.length} of ${planted.length + 1} mutations were rejected`))

    const text = await wal.run(['tail'])
    expect(text.code).toBe(0)
    expect(text.stdout.split('\n').filter((l) => l.includes(' POISON '))).toHaveLength(planted.length)
  })

  it('can be shown and explained from the DLQ, and is left there by replay', async () => {
    expect((await wal.run(['produce'], { input: ndjson([{ key: 'u1', payload: put(1) }]) })).code).toBe(0)
    plantPoison(wal.stateDir)
    await wal.run(['consume', '--until-idle'])
    const show = await wal.run(['dlq', 'show', '1', '--json'])
    expect(show.code).toBe(0)
    expect(JSON.parse(show.stdout)).toMatchObject({ entries: [{ errorClass: 'poison', code: 'WAL_RECORD_POISON', envelope: { payloadEncoding: 'base64' } }] })
    const stats = await wal.run(['dlq', 'stats', '--error-class', 'poison', '--json'])
    expect(stats.code).toBe(0)
    for (const id of ['01M80K6XFDG62PY7DFWNXXTEA2', '01M80K6XFDG62PY7DFWNXXTEA1', '01M80K6XFDG62PY7DFWNXXTEA5']) {
      const explain = await wal.run(['explain', id])
      expect(explain.code, explain.stderr).toBe(0)
      expect(explain.stdout).toMatch(/dead-lettered .*poison WAL_RECORD_POISON: cannot decode the record/)
    }
    const replay = await wal.run(['dlq', 'replay'])
    expect(replay.code).toBe(0)
    expect(replay.stdout).toMatch(/9 poison entries .* not replayed/)
    expect(deadLetters(wal.stateDir)).toHaveLength(9)
  })
})

describe('a record that cannot be decoded, under the daemon', () => {
  it('is dead-lettered as poison by the daemon\'s consumer, which goes on applying what comes after', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv' } } } }, daemon: { port: 0, leaseTtlMs: 1000, drainTimeoutMs: 5000 } }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: 'u1', payload: put(1) }]) })).code).toBe(0)
    const planted = plantPoison(wal.stateDir, 'orders')
    const daemon = await startForegroundDaemon(wal)
    const answer = await fetch(`${daemon.url}/v1/namespaces/orders/mutations`, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders(daemon.url) }, body: JSON.stringify({ key: 'u2', payload: put(2) }) })
    expect(answer.status).toBe(200)
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 2 && deadLetters(wal.stateDir, 'orders').length === planted.length, { timeoutMs: 30_000 })
    expect(new Set(deadLetters(wal.stateDir, 'orders').map((d) => d.error_class))).toEqual(new Set(['poison']))
    expect(daemon.events('dead-lettered')).toHaveLength(planted.length)
    expect(daemon.events('consumer-failed')).toEqual([])
    expect(await daemon.stop()).toBe(0)
  })
})
