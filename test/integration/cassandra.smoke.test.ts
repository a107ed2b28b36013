/**
 * Smoke tests of the Cassandra test server (scripts/services/cassandra.js): schema changes, prepared
 * statements and client-supplied write timestamps — which the Cassandra backend relies on to make
 * replayed writes idempotent — behave as on a real cluster. Expects the servers to be up
 * (`node scripts/services.js up`).
 */
import { randomBytes } from 'node:crypto'

import { Client } from 'cassandra-driver'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'

let client: Client

beforeAll(async () => {
  client = new Client({
    contactPoints: endpoints.cassandra.contactPoints,
    localDataCenter: endpoints.cassandra.localDataCenter,
    // Schema changes take seconds on a busy 2-core machine.
    socketOptions: { connectTimeout: 5000, readTimeout: 30_000 },
    // bigint columns and write times as native BigInt instead of the driver's Long.
    encoding: { useBigIntAsLong: true },
  })
  await client.connect()
})

afterAll(async () => {
  await client?.shutdown()
})

/** Runs `body` against a fresh keyspace (SimpleStrategy, RF 1) with a `log_entries` table, dropped afterwards. */
async function withKeyspace(label: string, body: (keyspace: string) => Promise<void>): Promise<void> {
  const keyspace = `wal_smoke_${label}_${randomBytes(4).toString('hex')}`
  await client.execute(`CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`)
  try {
    await client.execute(`CREATE TABLE ${keyspace}.log_entries (ns text, seq bigint, payload blob, PRIMARY KEY ((ns), seq))`)
    await body(keyspace)
  } finally {
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`)
  }
}

const insert = (keyspace: string) => `INSERT INTO ${keyspace}.log_entries (ns, seq, payload) VALUES (?, ?, ?) USING TIMESTAMP ?`
const select = (keyspace: string) => `SELECT payload, WRITETIME(payload) AS written FROM ${keyspace}.log_entries WHERE ns = ? AND seq = ?`

/** Microseconds since the epoch, as Cassandra's write timestamps are. */
const micros = (date: Date) => BigInt(date.getTime()) * 1000n

describe('the Cassandra test server', { timeout: 90_000 }, () => {
  it('reports a 5.0 release and the configured local datacenter', async () => {
    const row = (await client.execute('SELECT release_version, data_center FROM system.local')).first()
    expect(row?.get('release_version')).toMatch(/^5\.0\./)
    expect(row?.get('data_center')).toBe(endpoints.cassandra.localDataCenter)
  })

  it('creates a keyspace and table, inserts with a prepared statement USING TIMESTAMP, and reads the row back with that write time', async () => {
    await withKeyspace('roundtrip', async (keyspace) => {
      const payload = Buffer.concat([Buffer.from([0x00, 0xff, 0xfe]), randomBytes(29)])
      const timestamp = micros(new Date('2030-01-02T03:04:05.678Z')) + 9n
      await client.execute(insert(keyspace), ['orders', 42n, payload, timestamp], { prepare: true })

      const row = (await client.execute(select(keyspace), ['orders', 42n], { prepare: true })).first()
      expect(row).not.toBeNull()
      expect(Buffer.from(row.get('payload'))).toEqual(payload)
      expect(row.get('written')).toBe(timestamp)
    })
  })

  it('keeps the newer write when a write with an older timestamp arrives after it', async () => {
    await withKeyspace('lww', async (keyspace) => {
      const newer = micros(new Date())
      const older = newer - 1_000_000n
      await client.execute(insert(keyspace), ['orders', 1n, Buffer.from('newer'), newer], { prepare: true })
      await client.execute(insert(keyspace), ['orders', 1n, Buffer.from('older'), older], { prepare: true })

      const row = (await client.execute(select(keyspace), ['orders', 1n], { prepare: true })).first()
      expect(row.get('payload').toString()).toBe('newer')
      expect(row.get('written')).toBe(newer)

      // And a write with a later timestamp still wins: the row is not frozen.
      await client.execute(insert(keyspace), ['orders', 1n, Buffer.from('newest'), newer + 1n], { prepare: true })
      const after = (await client.execute(select(keyspace), ['orders', 1n], { prepare: true })).first()
      expect(after.get('payload').toString()).toBe('newest')
    })
  })

  it('drops the keyspace it created', async () => {
    let keyspace = ''
    await withKeyspace('drop', async (name) => {
      keyspace = name
      const { rows } = await client.execute('SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?', [name], { prepare: true })
      expect(rows).toHaveLength(1)
    })
    const { rows } = await client.execute('SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?', [keyspace], { prepare: true })
    expect(rows).toHaveLength(0)
  })
})
