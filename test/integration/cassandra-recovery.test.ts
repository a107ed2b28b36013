// The recovery story with a Cassandra target: the table restored from a backup taken at T (rows with
// their write times, as a snapshot keeps them), the target rewound to T, the bad mutation skipped.
import type { Client } from 'cassandra-driver'
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest'

import { cassandraClient, createKeyspace, dropKeyspace, writeCassandraConfig } from '../helpers/cassandra.js'
import { jsonLines, makeSandbox, ndjson, type Sandbox } from '../helpers/wal.js'

let client: Client
let keyspace: string
let wal: Sandbox

beforeAll(async () => {
  client = cassandraClient()
  await client.connect()
  keyspace = await createKeyspace(client, 'recovery')
  await client.execute(`CREATE TABLE ${keyspace}.users (id int PRIMARY KEY, v int)`)
})
afterAll(async () => {
  await dropKeyspace(client, keyspace)
  await client.shutdown()
})
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

const put = (id: number, v: number) => ({ op: 'put', table: 'users', key: { id }, item: { v } })

async function table(): Promise<Record<number, number>> {
  const result = await client.execute(`SELECT id, v FROM ${keyspace}.users`)
  return Object.fromEntries(result.rows.map((r) => [r.get('id') as number, r.get('v') as number]))
}

describe('recovery with a Cassandra target', () => {
  it('reaches the state without the bad mutation after a restore, a reset to T and a skip', async () => {
    writeCassandraConfig(wal.cwd, { keyspace })
    const expected: Record<number, number> = {}
    const first = Array.from({ length: 20 }, (_, id) => ({ key: `u${id}`, payload: put(id, 0) }))
    for (let id = 0; id < 20; id++) expected[id] = 0
    expect((await wal.run(['produce', '-n', 'ns'], { input: ndjson(first) })).code).toBe(0)
    const applied = await wal.run(['consume', '-n', 'ns', '--until-idle'])
    expect(applied.code, applied.stderr).toBe(0)

    // The backup at T: rows with their write times.
    const backup = (await client.execute(`SELECT id, v, WRITETIME(v) AS at FROM ${keyspace}.users`)).rows.map((r) => ({ id: r.get('id') as number, v: r.get('v') as number, at: r.get('at') as unknown }))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const t = new Date().toISOString()
    await new Promise((resolve) => setTimeout(resolve, 50))

    const more: Array<{ key: string; payload: Record<string, unknown> }> = []
    for (let i = 0; i < 100; i++) {
      if (i === 60) more.push({ key: 'u5', payload: { op: 'delete', table: 'users', key: { id: 5 } } })
      else {
        const id = 20 + (i % 30)
        more.push({ key: `u${id}`, payload: put(id, i) })
        expected[id] = i
      }
    }
    const acks = jsonLines<{ id: string }>((await wal.run(['produce', '-n', 'ns', '--json'], { input: ndjson(more) })).stdout)
    const bad = acks[60]!.id
    expect((await wal.run(['consume', '-n', 'ns', '--until-idle'])).code).toBe(0)
    expect((await table())[5]).toBeUndefined()

    // Restore: the table as the backup had it.
    await client.execute(`TRUNCATE ${keyspace}.users`)
    for (const row of backup) await client.execute(`INSERT INTO ${keyspace}.users (id, v) VALUES (?, ?) USING TIMESTAMP ?`, [row.id, row.v, row.at], { prepare: true })

    const executed = await wal.run(['offsets', 'reset', '-n', 'ns', '--target', 'db', '--to-time', t, '--execute', '--json'])
    expect(executed.code, executed.stderr).toBe(0)
    expect((JSON.parse(executed.stdout) as { plan: Array<{ reapplied: number }> }).plan.reduce((n, r) => n + r.reapplied, 0)).toBe(100)
    expect((await wal.run(['skip', bad, '-n', 'ns', '--target', 'db', '--reason', 'deleted a live user'])).code).toBe(0)
    const replay = await wal.run(['consume', '-n', 'ns', '--until-idle', '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    expect(JSON.parse(replay.stdout)).toMatchObject({ targets: [{ target: 'db', applied: 99, skipped: 1, lag: 0 }] })
    expect(await table()).toEqual(expected)
    const explained = JSON.parse((await wal.run(['explain', bad, '-n', 'ns', '--json'])).stdout) as { targets: Array<{ status: string }> }
    expect(explained.targets[0]!.status).toBe('skipped')
  })
})
