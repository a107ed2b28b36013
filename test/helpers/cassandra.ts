/**
 * The test Cassandra for integration tests: a client of its own, a fresh keyspace per test file, a
 * `.walrc.json` with a Cassandra target, and a Toxiproxy proxy of its own in front of Cassandra (on a
 * free port), so a test can cut the target off or slow it down without touching the shared proxies.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { Client } from 'cassandra-driver'

import { endpoints } from '../../scripts/services/endpoints.js'
import { createProxy } from './toxiproxy.js'

export function cassandraClient(): Client {
  return new Client({
    contactPoints: endpoints.cassandra.contactPoints,
    localDataCenter: endpoints.cassandra.localDataCenter,
    // Schema changes take seconds on a busy 2-core machine.
    socketOptions: { connectTimeout: 5000, readTimeout: 60_000 },
  })
}

/** A new keyspace (SimpleStrategy, RF 1) with a unique name. */
export async function createKeyspace(client: Client, label: string): Promise<string> {
  const keyspace = `wal_${label}_${randomBytes(4).toString('hex')}`
  await client.execute(`CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`)
  return keyspace
}

export async function dropKeyspace(client: Client, keyspace: string): Promise<void> {
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined)
}

/** Writes a config with namespace `ns` and one Cassandra target `db`. */
export function writeCassandraConfig(
  cwd: string,
  options: { keyspace: string; contactPoints?: string[]; cluster?: Record<string, unknown>; target?: Record<string, unknown>; namespace?: Record<string, unknown> },
): void {
  writeFileSync(
    join(cwd, '.walrc.json'),
    JSON.stringify({
      clusters: {
        cassandra: {
          main: { contactPoints: options.contactPoints ?? endpoints.cassandra.contactPoints, localDataCenter: endpoints.cassandra.localDataCenter, ...options.cluster },
        },
      },
      namespaces: { ns: { partitions: 4, ...options.namespace, targets: { db: { type: 'cassandra', cluster: 'main', keyspace: options.keyspace, ...options.target } } } },
    }),
  )
}

/** A Toxiproxy proxy in front of the test Cassandra, for one test. */
export interface CassandraProxy {
  /** host:port to use as the contact point. */
  address: string
  setEnabled(enabled: boolean): Promise<void>
  /** Adds latency (ms, ± jitter) to everything Cassandra sends back. */
  addLatency(latencyMs: number, jitterMs: number): Promise<void>
  removeToxics(): Promise<void>
  remove(): Promise<void>
}

export async function createCassandraProxy(): Promise<CassandraProxy> {
  const proxy = await createProxy('cassandra-target', endpoints.cassandra.contactPoints[0]!)
  return {
    address: proxy.address,
    setEnabled: (enabled) => proxy.setEnabled(enabled),
    async addLatency(latency, jitter) {
      await proxy.addToxic('latency', { latency, jitter })
    },
    removeToxics: () => proxy.removeToxics(),
    remove: () => proxy.remove(),
  }
}
