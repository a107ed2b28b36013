/**
 * A transaction applied to the real test Cassandra: 50 parts over 20 keys and 3 tables, its consumer
 * killed with SIGKILL mid-transaction, and the final state exact.
 */
import type { Client } from 'cassandra-driver'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest'

import { cassandraClient, createKeyspace, dropKeyspace, writeCassandraConfig } from '../helpers/cassandra.js'
import { makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let client: Client
let keyspace: string
let wal: Sandbox

beforeAll(async () => {
  client = cassandraClient()
  await client.connect()
  keyspace = await createKeyspace(client, 'txn')
  for (const table of ['t0', 't1', 't2']) await client.execute(`CREATE TABLE ${keyspace}.${table} (id int PRIMARY KEY, seq int)`)
}, 120_000)
afterAll(async () => {
  await dropKeyspace(client, keyspace)
  await client.shutdown()
})
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

function progress(txn: string): { applied_seq: number; state: string } | undefined {
  const db = new DatabaseSync(join(wal.stateDir, 'embedded', 'ns.db'), { readOnly: true, timeout: 5000 })
  try {
    return db.prepare('SELECT applied_seq, state FROM txn_progress WHERE txn = ?').get(txn) as { applied_seq: number; state: string } | undefined
  } catch {
    return undefined
  } finally {
    db.close()
  }
}

describe('a transaction applied to Cassandra', () => {
  it('resumes after a SIGKILL mid-transaction and ends with exactly the state its parts leave in order', async () => {
    writeCassandraConfig(wal.cwd, { keyspace })
    const parts = Array.from({ length: 50 }, (_, i) => ({ txn: 'c-1', key: `k${i % 20}`, payload: { op: 'put', table: `t${i % 3}`, key: { id: i % 7 }, item: { id: i % 7, seq: i } } }))
    const produced = await wal.run(['produce', '-n', 'ns'], { input: ndjson([...parts, { txn: 'c-1', commit: true }]) })
    expect(produced.code, produced.stderr).toBe(0)

    const consumer = wal.spawn(['consume', '-n', 'ns', '--rate', '10/s', '--lease-ttl', '1s'])
    consumer.stdout!.resume()
    consumer.stderr!.resume()
    const closed = new Promise((resolve) => consumer.on('close', resolve))
    await waitFor(() => (progress('c-1')?.applied_seq ?? -1) >= 5, { timeoutMs: 90_000 })
    consumer.kill('SIGKILL')
    await closed
    expect(progress('c-1')!.state).toBe('applying')

    const resumed = await wal.run(['consume', '-n', 'ns', '--until-idle', '--lease-ttl', '1s'])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(progress('c-1')).toEqual({ applied_seq: 49, state: 'applied' })
    for (const t of [0, 1, 2]) {
      const expected = new Map<number, number>()
      for (let i = 0; i < 50; i++) if (i % 3 === t) expected.set(i % 7, i)
      const found = new Map((await client.execute(`SELECT id, seq FROM ${keyspace}.t${t}`)).rows.map((r) => [r.get('id') as number, r.get('seq') as number]))
      expect(found, `t${t}`).toEqual(expected)
    }
  }, 180_000)
})
