/**
 * How operations become CQL, without the driver (pure, unit-tested):
 *
 * - `put`    → `INSERT INTO ks.t (key and item columns) VALUES (…) USING TIMESTAMP t`: an upsert of the
 *              given columns only; the others keep their values.
 * - `delete` → `DELETE FROM ks.t USING TIMESTAMP t WHERE <full primary key>`; a partition (`"scope":
 *              "partition"`) or a range of rows (`"scope": "range"`) only when asked for.
 * - `batch`  → one logged batch when its statements fit under maxBatchBytes, otherwise its parts one
 *              after the other (see planBatch).
 *
 * Every statement carries the mutation's createdAt in microseconds as its write time, so Cassandra
 * keeps the newest write per cell whatever the order of arrival: retries, duplicates and replays of
 * older mutations never overwrite newer data.
 */
import type { DeleteOperation, PartOperation, PutOperation } from '../operations.js'
import { TargetError } from '../target.js'

/** What wal needs to know about a table: its columns with their CQL types, and its primary key. */
export interface TableSchema {
  keyspace: string
  table: string
  /** Column name → CQL type as system_schema spells it (`text`, `list<int>`, `frozen<map<text, uuid>>`…). */
  columns: ReadonlyMap<string, string>
  partitionKey: readonly string[]
  clustering: readonly string[]
  /** Query texts already built, by column list (as JSON): a consumer builds each statement shape once. */
  queries?: Map<string, string>
  /** The last INSERT built or found in `queries`, with its columns: the next put most likely has the same. */
  lastInsert?: { names: readonly string[]; query: string }
}

/** One CQL statement with its values; the write time is the last value. */
export interface Statement {
  query: string
  params: unknown[]
}

/** Quotes a CQL identifier, so names match system_schema exactly (case included). */
export function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

function fatal(code: string, message: string): TargetError {
  return new TargetError(message, { errorClass: 'fatal', code })
}

const INTEGER_TYPES = new Set(['int', 'bigint', 'smallint', 'tinyint', 'varint', 'counter'])
const NUMBER_TYPES = new Set([...INTEGER_TYPES, 'float', 'double', 'decimal'])
const STRING_TYPES = new Set(['text', 'varchar', 'ascii', 'uuid', 'timeuuid', 'inet', 'date', 'time', 'duration'])

/**
 * A JSON value as the driver takes it for a column of `type`: bytes from base64 for blobs, the rest as
 * it is (the driver reads numbers from numeric strings, times from ISO strings or epoch ms). A value
 * that cannot fit the column is a fatal error naming it, so the mutation goes to the DLQ with why.
 */
export function toColumnValue(column: string, type: string, value: unknown, where: string): unknown {
  if (value === null) return null
  // The common cases first, and without allocating: this runs for every column of every mutation.
  if (typeof value === 'string' && (type === 'text' || type === 'varchar')) return value
  if (typeof value === 'number' && type === 'int' && Number.isInteger(value)) return value
  const base = type.startsWith('frozen<') ? type.slice(7, -1) : type
  const wrong = (expected: string): TargetError => valueError(column, type, value, expected, where)
  if (base === 'blob') {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw wrong('base64 bytes in a string')
    return Buffer.from(value, 'base64')
  }
  if (base === 'boolean') {
    if (typeof value !== 'boolean') throw wrong('true or false')
    return value
  }
  if (NUMBER_TYPES.has(base)) {
    const numeric = typeof value === 'number' || (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)))
    if (!numeric) throw wrong('a number')
    if (INTEGER_TYPES.has(base) && !Number.isInteger(Number(value))) throw wrong('a whole number')
    if (typeof value === 'number' && INTEGER_TYPES.has(base) && !Number.isSafeInteger(value)) throw wrong('a whole number within ±2^53 (give larger ones as strings)')
    return value
  }
  if (STRING_TYPES.has(base)) {
    if (typeof value !== 'string') throw wrong('a string')
    return value
  }
  if (base === 'timestamp') {
    if (typeof value !== 'string' && typeof value !== 'number') throw wrong('an ISO 8601 time or epoch milliseconds')
    if (typeof value === 'string' && Number.isNaN(Date.parse(value))) throw wrong('an ISO 8601 time or epoch milliseconds')
    return value
  }
  if (/^(list|set)</.test(base) && !Array.isArray(value)) throw wrong('an array')
  if (/^map</.test(base) && (typeof value !== 'object' || Array.isArray(value))) throw wrong('an object')
  // Tuples, UDTs, vectors and custom types: as given; the driver says what does not fit.
  return value
}

function valueError(column: string, type: string, value: unknown, expected: string, where: string): TargetError {
  return fatal('CASSANDRA_VALUE_INVALID', `${where}: column "${column}" is ${type}: expected ${expected}, found ${JSON.stringify(value)?.slice(0, 80) ?? typeof value}`)
}

/** The size Cassandra sees, roughly: names and values. Schema-free, so `wal explain` computes the same. */
export function estimateBytes(table: string, values: Record<string, unknown>): number {
  let bytes = 16 + table.length
  for (const name in values) {
    const value = values[name]
    bytes += name.length + (typeof value === 'string' ? Buffer.byteLength(value) : typeof value === 'number' ? 8 : typeof value === 'boolean' ? 1 : JSON.stringify(value ?? null).length)
  }
  return bytes
}

function primaryKey(schema: TableSchema): readonly string[] {
  return schema.clustering.length === 0 ? schema.partitionKey : [...schema.partitionKey, ...schema.clustering]
}

function unknownColumns(schema: TableSchema, names: Iterable<string>): string[] {
  return [...names].filter((n) => !schema.columns.has(n))
}

/**
 * The statement of a put: the item's columns, then the key's that the item does not name (a key column
 * in both must agree). Read from the objects' own fields, so a column named like an Object method or
 * `__proto__` is a column like any other. This runs for every mutation: no object is built per put.
 */
function putStatement(schema: TableSchema, part: PutOperation, timestampMicros: unknown, where: string): Statement {
  const { item, key } = part
  const names: string[] = []
  const values: unknown[] = []
  for (const name in item) {
    names.push(name)
    values.push(item[name])
  }
  for (const name in key) {
    const value = key[name]
    if (Object.hasOwn(item, name)) {
      if (item[name] !== value) throw fatal('CASSANDRA_KEY_MISMATCH', `${where}: key column "${name}" is ${JSON.stringify(value)} in "key" but ${JSON.stringify(item[name])} in "item"`)
      continue
    }
    names.push(name)
    values.push(value)
  }
  const params: unknown[] = new Array(names.length + 1)
  let unknown: string[] | undefined
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!
    const type = schema.columns.get(name)
    if (type === undefined) (unknown ??= []).push(name)
    else params[i] = toColumnValue(name, type, values[i], where)
  }
  if (unknown !== undefined) {
    throw fatal('CASSANDRA_COLUMN_UNKNOWN', `${where}: table ${schema.keyspace}.${schema.table} has no column ${unknown.map((c) => `"${c}"`).join(', ')}`)
  }
  let missing: string[] | undefined
  for (const keyColumns of [schema.partitionKey, schema.clustering]) {
    for (const column of keyColumns) {
      const at = names.indexOf(column)
      if (at === -1 || values[at] === null || values[at] === undefined) (missing ??= []).push(column)
    }
  }
  if (missing !== undefined) {
    throw fatal('CASSANDRA_KEY_MISSING', `${where}: primary key column ${missing.map((c) => `"${c}"`).join(', ')} of ${schema.keyspace}.${schema.table} missing`)
  }
  params[names.length] = timestampMicros
  return { query: insertQuery(schema, names), params }
}

/** The INSERT of these columns, built once per column list (puts of a table nearly always share one). */
function insertQuery(schema: TableSchema, names: readonly string[]): string {
  const last = schema.lastInsert
  if (last !== undefined && sameNames(last.names, names)) return last.query
  // Keyed by the names as JSON: a column name may hold any character, so no separator is safe.
  const shape = JSON.stringify(names)
  let query = schema.queries?.get(shape)
  if (query === undefined) {
    query = `INSERT INTO ${quote(schema.keyspace)}.${quote(schema.table)} (${names.map(quote).join(', ')}) VALUES (${names.map(() => '?').join(', ')}) USING TIMESTAMP ?`
    schema.queries?.set(shape, query)
  }
  if (schema.queries !== undefined) schema.lastInsert = { names, query }
  return query
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function deleteStatement(schema: TableSchema, part: DeleteOperation, timestampMicros: unknown, where: string): Statement {
  const scope = part.scope ?? (part.range ? 'range' : 'row')
  const given = Object.keys(part.key)
  const unknown = unknownColumns(schema, given)
  if (unknown.length > 0) {
    throw fatal('CASSANDRA_COLUMN_UNKNOWN', `${where}: table ${schema.keyspace}.${schema.table} has no column ${unknown.map((c) => `"${c}"`).join(', ')}`)
  }
  const fullKey = primaryKey(schema)
  const list = (names: readonly string[]): string => names.map((c) => `"${c}"`).join(', ')
  const notKey = given.filter((c) => !fullKey.includes(c))
  if (notKey.length > 0) {
    throw fatal('CASSANDRA_KEY_INVALID', `${where}: ${list(notKey)} ${notKey.length === 1 ? 'is not a primary key column' : 'are not primary key columns'} of ${schema.keyspace}.${schema.table} (its key: ${list(fullKey)})`)
  }
  let keyColumns: readonly string[]
  if (scope === 'row') {
    const missing = fullKey.filter((c) => !given.includes(c))
    if (missing.length > 0) {
      throw fatal(
        'CASSANDRA_KEY_MISSING',
        `${where}: a delete needs the full primary key of ${schema.keyspace}.${schema.table}: ${list(missing)} missing (to delete more than one row, ask for "scope": "partition" or "range")`,
      )
    }
    keyColumns = fullKey
  } else {
    const missing = schema.partitionKey.filter((c) => !given.includes(c))
    if (missing.length > 0) throw fatal('CASSANDRA_KEY_MISSING', `${where}: a ${scope} delete needs the partition key of ${schema.keyspace}.${schema.table}: ${list(missing)} missing`)
    const prefix = schema.clustering.slice(0, given.length - schema.partitionKey.length)
    if (scope === 'partition' && prefix.length > 0) {
      throw fatal('CASSANDRA_DELETE_SCOPE', `${where}: a partition delete takes the partition key only (${list(schema.partitionKey)}), not ${list(prefix)}`)
    }
    if (prefix.some((c) => !given.includes(c)) || (scope === 'range' && prefix.length === schema.clustering.length)) {
      throw fatal('CASSANDRA_DELETE_SCOPE', `${where}: a range delete takes the partition key and a leading part of the clustering columns (${list(schema.clustering)}), fewer than all`)
    }
    keyColumns = [...schema.partitionKey, ...prefix]
  }
  const conditions = keyColumns.map((c) => `${quote(c)} = ?`)
  const params = keyColumns.map((c) => toColumnValue(c, schema.columns.get(c)!, part.key[c], where))
  if (part.range) {
    if (scope !== 'range') throw fatal('CASSANDRA_DELETE_SCOPE', `${where}: "range" bounds need "scope": "range"`)
    const next = schema.clustering[keyColumns.length - schema.partitionKey.length]
    if (part.range.column !== next) {
      throw fatal('CASSANDRA_DELETE_SCOPE', `${where}: range bounds apply to the next clustering column, "${next}", not "${part.range.column}"`)
    }
    const ops = { gt: '>', gte: '>=', lt: '<', lte: '<=' } as const
    for (const [name, op] of Object.entries(ops) as Array<[keyof typeof ops, string]>) {
      const bound = part.range[name]
      if (bound === undefined) continue
      conditions.push(`${quote(next)} ${op} ?`)
      params.push(toColumnValue(next, schema.columns.get(next)!, bound, where))
    }
  }
  return {
    query: `DELETE FROM ${quote(schema.keyspace)}.${quote(schema.table)} USING TIMESTAMP ? WHERE ${conditions.join(' AND ')}`,
    params: [timestampMicros, ...params],
  }
}

/**
 * The statement of one part. `where` names it in messages (`mutation 01J…`, `part 3 of 7`).
 * Throws a fatal TargetError naming the table, column or key column at fault.
 */
export function partStatement(schema: TableSchema, part: PartOperation, timestampMicros: unknown, where: string): Statement {
  return part.op === 'put' ? putStatement(schema, part, timestampMicros, where) : deleteStatement(schema, part, timestampMicros, where)
}

/** How a mutation's parts are applied. */
export type BatchPlan =
  | { mode: 'single'; bytes: number }
  | { mode: 'logged-batch'; parts: number; bytes: number }
  | { mode: 'parts'; parts: number; bytes: number; reason: string }

/** Cassandra's protocol counts a batch's statements in 16 bits. */
const MAX_BATCH_STATEMENTS = 65_535

/**
 * One part: one statement. Several: one logged batch (atomic: all or none take effect) when their size
 * is within maxBatchBytes, else part by part in order, each part's progress kept so a retry skips what
 * was applied. Either way the end state is the same, since every part carries the same write time.
 */
export function planBatch(parts: readonly PartOperation[], maxBatchBytes: number): BatchPlan {
  let bytes = 0
  for (const part of parts) bytes += estimateBytes(part.table, part.op === 'put' ? { ...part.item, ...part.key } : part.key)
  if (parts.length === 1) return { mode: 'single', bytes }
  if (bytes > maxBatchBytes) return { mode: 'parts', parts: parts.length, bytes, reason: `about ${bytes} bytes, above maxBatchBytes (${maxBatchBytes})` }
  if (parts.length > MAX_BATCH_STATEMENTS) return { mode: 'parts', parts: parts.length, bytes, reason: `more than ${MAX_BATCH_STATEMENTS} statements` }
  return { mode: 'logged-batch', parts: parts.length, bytes }
}

/** The plan in words, for `wal explain`. */
export function describePlan(plan: BatchPlan): string {
  switch (plan.mode) {
    case 'single':
      return `one statement (about ${plan.bytes} bytes)`
    case 'logged-batch':
      return `${plan.parts} parts in one logged batch (about ${plan.bytes} bytes): all take effect or none`
    case 'parts':
      return `${plan.parts} parts applied one after the other (${plan.reason}); a retry skips the parts already applied`
  }
}

/** A spread of 0..maxMs for a mutation, the same on every consumer and every restart (from its id). */
export function jitterMs(id: string, maxMs: number): number {
  if (maxMs <= 0) return 0
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  return (h >>> 0) % (maxMs + 1)
}
