import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

import { resolveConfig, validateConfig } from '../../src/lib/config/load.js'
import { ClusterAccessError, ConfigError } from '../../src/lib/errors.js'
import type { CassandraClusterSettings } from '../../src/lib/config/schema.js'
import { createKeyspaceStatement, createTableStatement, tableProblems } from '../../src/lib/targets/cassandra/declared-tables.js'
import { classifyCassandraError, connectError } from '../../src/lib/targets/cassandra/driver.js'
import { describePlan, jitterMs, partStatement, planBatch, toColumnValue, type TableSchema } from '../../src/lib/targets/cassandra/statements.js'
import type { PartOperation } from '../../src/lib/targets/operations.js'
import { TargetError } from '../../src/lib/targets/target.js'

// The driver's own error classes (not stand-ins): classification must work on what it really throws.
const { errors, types } = createRequire(import.meta.url)('cassandra-driver') as typeof import('cassandra-driver')

const events: TableSchema = {
  keyspace: 'shop',
  table: 'events',
  columns: new Map([
    ['user', 'int'],
    ['day', 'text'],
    ['ts', 'int'],
    ['what', 'text'],
    ['tags', 'set<text>'],
    ['raw', 'blob'],
  ]),
  partitionKey: ['user', 'day'],
  clustering: ['ts'],
}

const T = 'T'
const at = (part: PartOperation) => partStatement(events, part, T, 'mutation M')
const failure = (fn: () => unknown): TargetError => {
  try {
    fn()
  } catch (error) {
    return error as TargetError
  }
  throw new Error('expected an error')
}

describe('Cassandra statements', () => {
  it('upserts the key and item columns of a put, written at the mutation time', () => {
    const s = at({ op: 'put', table: 'events', key: { user: 1, day: 'mon', ts: 5 }, item: { what: 'login', raw: 'AAE=' } })
    expect(s.query).toBe('INSERT INTO "shop"."events" ("what", "raw", "user", "day", "ts") VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?')
    expect(s.params).toEqual(['login', Buffer.from([0, 1]), 1, 'mon', 5, T])
  })

  it('builds each column list its own INSERT, whatever characters the column names hold', () => {
    // Quoted CQL names may hold commas or be called like an Object method; the query cache must not mix them up.
    const odd: TableSchema = {
      keyspace: 'ks',
      table: 't',
      columns: new Map(['id', 'a,b', 'c', 'a', 'b,c', 'toString', '__proto__'].map((c) => [c, 'text'])),
      partitionKey: ['id'],
      clustering: [],
      queries: new Map(),
    }
    const put = (item: Record<string, unknown>, key: Record<string, string> = { id: 'k' }) => partStatement(odd, { op: 'put', table: 't', key, item }, T, 'mutation M')
    expect(put({ 'a,b': '1', c: '2' })).toEqual({ query: 'INSERT INTO "ks"."t" ("a,b", "c", "id") VALUES (?, ?, ?) USING TIMESTAMP ?', params: ['1', '2', 'k', T] })
    expect(put({ a: '1', 'b,c': '2' })).toEqual({ query: 'INSERT INTO "ks"."t" ("a", "b,c", "id") VALUES (?, ?, ?) USING TIMESTAMP ?', params: ['1', '2', 'k', T] })
    expect(put({ 'a,b': '3', c: '4' }).query).toBe('INSERT INTO "ks"."t" ("a,b", "c", "id") VALUES (?, ?, ?) USING TIMESTAMP ?')
    // A key column called toString is a column, not a clash with Object.prototype.toString.
    const named = { ...odd, partitionKey: ['toString'] }
    expect(partStatement(named, { op: 'put', table: 't', key: { toString: 'x' }, item: { c: '1' } }, T, 'M')).toEqual({
      query: 'INSERT INTO "ks"."t" ("c", "toString") VALUES (?, ?) USING TIMESTAMP ?',
      params: ['1', 'x', T],
    })
    // `__proto__` as JSON.parse makes it: an own field, written like any column.
    const item = JSON.parse('{"__proto__":"p","c":"1"}') as Record<string, unknown>
    expect(put(item)).toEqual({ query: 'INSERT INTO "ks"."t" ("__proto__", "c", "id") VALUES (?, ?, ?) USING TIMESTAMP ?', params: ['p', '1', 'k', T] })
  })

  it('deletes one row by its full primary key unless a wider scope is asked for', () => {
    expect(at({ op: 'delete', table: 'events', key: { user: 1, day: 'mon', ts: 5 } })).toMatchObject({
      query: 'DELETE FROM "shop"."events" USING TIMESTAMP ? WHERE "user" = ? AND "day" = ? AND "ts" = ?',
      params: [T, 1, 'mon', 5],
    })
    expect(failure(() => at({ op: 'delete', table: 'events', key: { user: 1, day: 'mon' } }))).toMatchObject({
      errorClass: 'fatal',
      code: 'CASSANDRA_KEY_MISSING',
      message: expect.stringMatching(/full primary key of shop\.events: "ts" missing.*"scope": "partition" or "range"/),
    })
    expect(at({ op: 'delete', table: 'events', key: { user: 1, day: 'mon' }, scope: 'partition' })).toMatchObject({
      query: 'DELETE FROM "shop"."events" USING TIMESTAMP ? WHERE "user" = ? AND "day" = ?',
    })
    expect(at({ op: 'delete', table: 'events', key: { user: 1, day: 'mon' }, scope: 'range', range: { column: 'ts', gte: 10, lt: 20 } })).toMatchObject({
      query: 'DELETE FROM "shop"."events" USING TIMESTAMP ? WHERE "user" = ? AND "day" = ? AND "ts" >= ? AND "ts" < ?',
      params: [T, 1, 'mon', 10, 20],
    })
  })

  it('refuses deletes whose key does not fit their scope, naming the columns', () => {
    expect(failure(() => at({ op: 'delete', table: 'events', key: { user: 1 }, scope: 'partition' })).message).toMatch(/partition key of shop\.events: "day" missing/)
    expect(failure(() => at({ op: 'delete', table: 'events', key: { user: 1, day: 'mon', ts: 1 }, scope: 'partition' })).code).toBe('CASSANDRA_DELETE_SCOPE')
    expect(failure(() => at({ op: 'delete', table: 'events', key: { user: 1, day: 'mon', what: 'x' } })).message).toMatch(/"what" is not a primary key column/)
    expect(failure(() => at({ op: 'delete', table: 'events', key: { user: 1, day: 'mon' }, scope: 'range', range: { column: 'what', gt: 1 } })).message).toMatch(
      /next clustering column, "ts", not "what"/,
    )
  })

  it('makes unknown columns, missing key columns and values that do not fit fatal, naming them', () => {
    expect(failure(() => at({ op: 'put', table: 'events', key: { user: 1, day: 'mon', ts: 1 }, item: { wat: 'x' } }))).toMatchObject({
      errorClass: 'fatal',
      code: 'CASSANDRA_COLUMN_UNKNOWN',
      message: 'mutation M: table shop.events has no column "wat"',
    })
    expect(failure(() => at({ op: 'put', table: 'events', key: { user: 1 }, item: { what: 'x' } }))).toMatchObject({
      code: 'CASSANDRA_KEY_MISSING',
      message: 'mutation M: primary key column "day", "ts" of shop.events missing',
    })
    expect(failure(() => at({ op: 'put', table: 'events', key: { user: 1, day: 'mon', ts: 1 }, item: { user: 2 } })).code).toBe('CASSANDRA_KEY_MISMATCH')
    expect(failure(() => at({ op: 'put', table: 'events', key: { user: 1.5, day: 'mon', ts: 1 }, item: {} }))).toMatchObject({
      code: 'CASSANDRA_VALUE_INVALID',
      message: 'mutation M: column "user" is int: expected a whole number, found 1.5',
    })
    expect(() => toColumnValue('tags', 'set<text>', 'a', 'w')).toThrow(/column "tags" is set<text>: expected an array/)
    expect(() => toColumnValue('raw', 'blob', 'not base64!', 'w')).toThrow(/expected base64 bytes/)
    expect(toColumnValue('n', 'bigint', '9007199254740993', 'w')).toBe('9007199254740993')
    expect(toColumnValue('t', 'timestamp', '2026-01-01T00:00:00Z', 'w')).toBe('2026-01-01T00:00:00Z')
  })

  it('plans a batch as one logged batch when it fits, and part by part when it does not', () => {
    const put = (i: number, size: number): PartOperation => ({ op: 'put', table: 'events', key: { user: i, day: 'mon', ts: 1 }, item: { what: 'x'.repeat(size) } })
    expect(planBatch([put(1, 10)], 100).mode).toBe('single')
    const small = planBatch([put(1, 10), put(2, 10)], 1000)
    expect(small).toMatchObject({ mode: 'logged-batch', parts: 2 })
    const large = planBatch([put(1, 600), put(2, 600)], 1000)
    expect(large).toMatchObject({ mode: 'parts', parts: 2 })
    expect(describePlan(small)).toMatch(/2 parts in one logged batch/)
    expect(describePlan(large)).toMatch(/2 parts applied one after the other \(about \d+ bytes, above maxBatchBytes \(1000\)\); a retry skips/)
  })

  it('spreads delayed deletes by a jitter that is the same for the same mutation every time', () => {
    const spread = ['01A', '01B', '01C', '01D', '01E'].map((id) => jitterMs(id, 60_000))
    expect(spread).toEqual(['01A', '01B', '01C', '01D', '01E'].map((id) => jitterMs(id, 60_000)))
    expect(spread.every((ms) => ms >= 0 && ms <= 60_000)).toBe(true)
    expect(new Set(spread).size).toBeGreaterThan(1)
    expect(jitterMs('01A', 0)).toBe(0)
  })
})

describe('declared Cassandra tables', () => {
  const declared = { columns: { user: 'int', day: 'varchar', ts: 'int', what: 'text' }, partitionKey: ['user', 'day'], clusteringKey: ['ts'] }

  it('become CREATE statements with their primary key', () => {
    expect(createTableStatement('shop', 'events', declared)).toBe(
      'CREATE TABLE IF NOT EXISTS "shop"."events" ("user" int, "day" varchar, "ts" int, "what" text, PRIMARY KEY (("user", "day"), "ts"))',
    )
    expect(createKeyspaceStatement('shop', { class: 'NetworkTopologyStrategy', dc1: 3 })).toBe(
      `CREATE KEYSPACE IF NOT EXISTS "shop" WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 3}`,
    )
  })

  it('are compared with the table Cassandra has, naming each difference', () => {
    expect(tableProblems(events, declared, 'shop', 'events')).toEqual([])
    expect(tableProblems(null, declared, 'shop', 'events')).toEqual(['table shop.events does not exist'])
    expect(tableProblems(events, { columns: { ...declared.columns, email: 'text', ts: 'bigint' }, partitionKey: ['user'], clusteringKey: [] }, 'shop', 'events')).toEqual([
      'column shop.events.ts is int, not bigint',
      'table shop.events has no column "email"',
      'the partition key of shop.events is (user, day), not (user)',
      'the clustering columns of shop.events are (ts), not ()',
    ])
  })
})

describe('Cassandra errors', () => {
  const cluster: CassandraClusterSettings = { name: 'main', contactPoints: ['db:9042'], localDataCenter: 'dc1', keyspace: 'shop', auth: null, tls: false, connectTimeoutMs: 5000 }

  it('classes timeouts and unavailable replicas as retryable, refused statements as fatal, no hosts as infrastructure', () => {
    const response = (code: number, message: string) => new errors.ResponseError(code, message)
    const codes = types.responseErrorCodes
    expect(classifyCassandraError(response(codes.writeTimeout, 'timed out'))).toMatchObject({ errorClass: 'retryable', code: 'CASSANDRA_WRITE_TIMEOUT' })
    expect(classifyCassandraError(response(codes.unavailableException, 'not enough replicas'))).toMatchObject({ errorClass: 'retryable', code: 'CASSANDRA_UNAVAILABLE' })
    expect(classifyCassandraError(response(codes.overloaded, 'busy'))).toMatchObject({ errorClass: 'retryable', code: 'CASSANDRA_OVERLOADED' })
    expect(classifyCassandraError(response(codes.syntaxError, 'no viable alternative'))).toMatchObject({ errorClass: 'fatal', code: 'CASSANDRA_SYNTAX' })
    expect(classifyCassandraError(response(codes.invalid, 'Batch too large'))).toMatchObject({ errorClass: 'fatal', code: 'CASSANDRA_BATCH_TOO_LARGE' })
    expect(classifyCassandraError(response(codes.invalid, 'unconfigured table'))).toMatchObject({ errorClass: 'fatal', code: 'CASSANDRA_INVALID' })
    expect(classifyCassandraError(new errors.NoHostAvailableError({ 'db:9042': new Error('connect ECONNREFUSED') }))).toMatchObject({
      errorClass: 'infrastructure',
      code: 'CASSANDRA_NO_HOST',
      message: 'Cassandra: no host reachable: connect ECONNREFUSED',
    })
    expect(classifyCassandraError(new errors.OperationTimedOutError('no answer', 'db:9042'))).toMatchObject({ errorClass: 'retryable', code: 'CASSANDRA_CLIENT_TIMEOUT' })
    // What the driver throws when the only host timed out: slow, not gone.
    expect(classifyCassandraError(new errors.NoHostAvailableError({ 'db:9042': new errors.OperationTimedOutError('no answer', 'db:9042') }))).toMatchObject({
      errorClass: 'retryable',
      code: 'CASSANDRA_CLIENT_TIMEOUT',
    })
    // Hosts marked down: nothing tried at all.
    expect(classifyCassandraError(new errors.NoHostAvailableError({}))).toMatchObject({ errorClass: 'infrastructure', code: 'CASSANDRA_NO_HOST' })
    expect(classifyCassandraError(new TypeError('Expected Number'))).toMatchObject({ errorClass: 'fatal', code: 'CASSANDRA_VALUE_INVALID' })
  })

  it('words a failed start as a configuration error naming what is wrong, or as unreachable', () => {
    const dc = connectError(new errors.NoHostAvailableError({ 'db:9042': new errors.ArgumentError("localDataCenter was configured as 'dc1', but only found hosts in data centers: [dc9]") }), cluster, 'target "db"')
    expect(dc).toBeInstanceOf(ConfigError)
    expect(dc).toMatchObject({ code: 'WAL_TARGET_DATACENTER', exitCode: 3 })
    const auth = connectError(new errors.NoHostAvailableError({ 'db:9042': new errors.AuthenticationError('Provided username wal and/or password are incorrect') }), cluster, 'target "db"')
    expect(auth).toBeInstanceOf(ClusterAccessError)
    expect(auth).toMatchObject({ code: 'WAL_TARGET_AUTH', exitCode: 3, message: expect.stringMatching(/refused the credentials: Provided username wal/) })
    const tls = Object.assign(new Error('wrong version number'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' })
    expect(connectError(new errors.NoHostAvailableError({ 'db:9042': tls }), cluster, 'target "db"')).toMatchObject({ code: 'WAL_TARGET_TLS', exitCode: 3 })
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:9042'), { code: 'ECONNREFUSED' })
    expect(connectError(new errors.NoHostAvailableError({ 'db:9042': refused }), cluster, 'target "db"')).toMatchObject({ code: 'WAL_TARGET_UNAVAILABLE', exitCode: 5 })
  })
})

describe('Cassandra configuration', () => {
  const resolve = (raw: unknown) => resolveConfig(validateConfig(raw, '/etc/w.json', {}), '/etc/w.json', {})

  it('resolves a target with its cluster, the cluster keyspace and defaults', () => {
    const config = resolve({
      clusters: { cassandra: { main: { contactPoints: ['db:9042'], localDataCenter: 'dc1', keyspace: 'shop', tls: { ca: 'ca.pem' } } } },
      namespaces: { orders: { targets: { db: { type: 'cassandra', cluster: 'main' } } } },
    })
    expect(config.namespaces.get('orders')!.targets[0]).toMatchObject({
      type: 'cassandra',
      keyspace: 'shop',
      consistency: 'localQuorum',
      concurrency: 64,
      maxBatchBytes: 40960,
      deleteJitterMs: 0,
      cluster: { contactPoints: ['db:9042'], localDataCenter: 'dc1', tls: { ca: '/etc/ca.pem' } },
    })
  })

  it('names the key when the cluster is undeclared or no keyspace is given', () => {
    expect(() => resolve({ namespaces: { a: { targets: { db: { type: 'cassandra', cluster: 'nope' } } } } })).toThrow(
      /key "namespaces\.a\.targets\.db\.cluster": cluster "nope" is not declared under clusters\.cassandra/,
    )
    expect(() =>
      resolve({ clusters: { cassandra: { main: { contactPoints: ['db'], localDataCenter: 'dc1' } } }, namespaces: { a: { targets: { db: { type: 'cassandra', cluster: 'main' } } } } }),
    ).toThrow(/key "namespaces\.a\.targets\.db": a Cassandra target needs a keyspace/)
    expect(() => validateConfig({ namespaces: { a: { targets: { db: { type: 'cassandra', cluster: 'main', consistency: 'most' } } } } }, 'w.json', {})).toThrow(
      /expected a consistency level: any, one/,
    )
  })
})
