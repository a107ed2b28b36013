/**
 * Structured payloads that targets apply: `put` (upsert an item by its key), `delete` (by key) and
 * `batch` (several puts and deletes, across tables, that must all take effect).
 *
 *   {"op":"put","table":"users","key":{"id":42},"item":{"id":42,"name":"Ada"}}
 *   {"op":"delete","table":"users","key":{"id":42}}
 *   {"op":"batch","parts":[{"op":"put",…},{"op":"delete",…}]}
 */
import * as v from 'valibot'

import type { Mutation } from '../envelope/envelope.js'
import { expectedOf } from '../validation.js'
import { TargetError } from './target.js'

const KeyValue = v.union([v.string(), v.number(), v.boolean()], 'a key value: string, number or boolean')
// valibot's record takes an array for an object (and outputs one): refuse it before, or [1, 2] would be
// columns "0" and "1".
const NotArray = (what: string) => v.check((x: unknown) => !Array.isArray(x), what)
const Key = v.pipe(
  v.unknown(),
  NotArray('an object of key columns, not an array'),
  v.record(v.string(), KeyValue, 'an object of key columns'),
  v.check((k) => Object.keys(k).length > 0, 'at least one key column'),
)
const Table = v.pipe(v.string('a table name'), v.regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'a table name: letters, digits and _'))

const Put = v.strictObject({ op: v.literal('put'), table: Table, key: Key, item: v.pipe(v.unknown(), NotArray('an item object, not an array'), v.record(v.string(), v.unknown(), 'an item object')) })
const Bound = v.union([v.string(), v.number()], 'a bound: string or number')
/**
 * A delete removes one row (its full key) unless it asks for more: `"scope": "partition"` (the key is
 * the partition key) or `"scope": "range"` (the partition key and a prefix of the clustering columns,
 * optionally with bounds on the next clustering column). Only wide-row targets (Cassandra) apply those.
 */
const Delete = v.strictObject({
  op: v.literal('delete'),
  table: Table,
  key: Key,
  scope: v.optional(v.picklist(['row', 'partition', 'range'], 'a scope: "row", "partition" or "range"')),
  range: v.optional(
    v.strictObject({
      column: v.pipe(v.string('a clustering column name'), v.minLength(1)),
      gt: v.optional(Bound),
      gte: v.optional(Bound),
      lt: v.optional(Bound),
      lte: v.optional(Bound),
    }),
  ),
})
const Part = v.variant('op', [Put, Delete], 'a put or delete')
const Batch = v.strictObject({ op: v.literal('batch'), parts: v.pipe(v.array(Part), v.minLength(1, 'at least one part')) })
const Operation = v.variant('op', [Put, Delete, Batch], 'an operation with "op": "put", "delete" or "batch"')

export type PutOperation = v.InferOutput<typeof Put>
export type DeleteOperation = v.InferOutput<typeof Delete>
export type PartOperation = PutOperation | DeleteOperation
export type Operation = v.InferOutput<typeof Operation>

/**
 * The operation a mutation carries, or a fatal TargetError saying what is wrong with it (retrying a
 * malformed operation can never succeed, so it goes straight to the DLQ).
 */
export function parseOperation(mutation: Mutation, options: { exactItems?: boolean } = {}): Operation {
  if (mutation.payload.encoding !== 'json') {
    throw new TargetError('the payload is bytes; this target applies JSON operations (put, delete, batch)', {
      errorClass: 'fatal',
      code: 'NOT_AN_OPERATION',
    })
  }
  const parsed: unknown = parseExactNumbers(mutation.payload.json, options.exactItems === true)
  const quick = quickPart(parsed)
  if (quick !== undefined) return quick
  const result = v.safeParse(Operation, parsed)
  if (!result.success) {
    const issue = result.issues[0]
    const path = v.getDotPath(issue)
    const why = issue.received === 'undefined' && path ? `"${path}" is missing` : `${path ? `"${path}": ` : ''}expected ${expectedOf(issue)}, found ${issue.received}`
    throw new TargetError(`not a valid operation: ${why}`, {
      errorClass: 'fatal',
      code: 'NOT_AN_OPERATION',
    })
  }
  return result.output
}

/**
 * Whether a parsed value holds a number that may not be what its literal said: one beyond a double
 * (parsed as ±Infinity) or an integer past ±(2^53 − 1) (possibly rounded). Every literal inexactReason
 * refuses parses to one of those, so a value without any is exactly its text. Walking the few values of
 * a parsed payload costs a fraction of scanning its text for long digit runs (a consumer's hot path).
 * Nesting past MAX_WALK_DEPTH answers true: the caller then looks at each literal's source.
 */
function mayBeInexact(value: unknown, depth: number): boolean {
  if (typeof value === 'number') return !Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value))
  if (typeof value !== 'object' || value === null) return false
  if (depth >= MAX_WALK_DEPTH) return true
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (mayBeInexact(value[i], depth + 1)) return true
    return false
  }
  for (const field in value) if (mayBeInexact((value as Record<string, unknown>)[field], depth + 1)) return true
  return false
}
const MAX_WALK_DEPTH = 64

/** Why a number literal would not be applied as written (a double rounds or overflows it), or null. */
function inexactReason(source: string, value: number): string | null {
  if (!Number.isFinite(value)) return 'is beyond what a double holds (it would be stored as null)'
  if (/^-?\d+$/.test(source) && !Number.isSafeInteger(value) && BigInt(source) !== BigInt(value)) {
    return `is an integer beyond ±(2^53 − 1), which a double holds only rounded (it would be stored as ${value})`
  }
  return null
}

function notExact(field: string, source: string, reason: string): TargetError {
  return new TargetError(`not a valid operation: ${field}: ${source.length > 40 ? `${source.slice(0, 40)}…` : source} ${reason}; send it as a string`, {
    errorClass: 'fatal',
    code: 'NUMBER_NOT_EXACT',
  })
}

type RawJson = { readonly rawJSON: string }
const { rawJSON, isRawJSON } = JSON as unknown as { rawJSON: (text: string) => RawJson; isRawJSON: (value: unknown) => value is RawJson }

/**
 * The payload parsed, or a fatal TargetError for a number a target would not apply as written: an
 * integer a double holds only rounded (9007199254740993 would become 9007199254740992, and two distinct
 * keys one row) or a number beyond a double (1e400 would become null). With `exactItems` (a target that
 * stores an item as JSON text, as kv does), such a number in an item is kept as its own text instead
 * (JSON.rawJSON, which JSON.stringify writes back as it was); in a key it is refused all the same, since
 * keys are compared as values. The log keeps such payloads exact either way.
 */
function parseExactNumbers(text: string, exactItems: boolean): unknown {
  // Nearly every payload has no such number: parsed without looking at each number's source.
  const plain: unknown = JSON.parse(text)
  if (!mayBeInexact(plain, 0)) return plain
  const parsed: unknown = JSON.parse(text, (field: string, value: unknown, context?: { source?: string }) => {
    if (typeof value !== 'number') return value
    const source = context?.source ?? String(value)
    const reason = inexactReason(source, value)
    if (reason === null) return value
    if (exactItems) return rawJSON(source)
    throw notExact(field === '' ? 'the payload' : `field ${JSON.stringify(field)}`, source, reason)
  })
  if (exactItems) {
    // Kept exact in items; a key (of a put, a delete or a batch's part) must be a value that compares.
    const parts = isPlainObject(parsed) && parsed.op === 'batch' && Array.isArray(parsed.parts) ? (parsed.parts as unknown[]) : [parsed]
    for (const part of parts) {
      if (!isPlainObject(part) || !isPlainObject(part.key)) continue
      for (const [column, value] of Object.entries(part.key)) {
        if (isRawJSON(value)) throw notExact(`field ${JSON.stringify(column)}`, value.rawJSON, inexactReason(value.rawJSON, Number(value.rawJSON))!)
      }
    }
    if (isRawJSON(parsed)) throw notExact('the payload', parsed.rawJSON, inexactReason(parsed.rawJSON, Number(parsed.rawJSON))!)
  }
  return parsed
}

const TABLE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * The two shapes nearly every mutation has — a plain put ({op, table, key, item}) or row delete
 * ({op, table, key}) — checked without the schema walk (the hot path of a consumer). Anything else,
 * valid or not, returns undefined and goes through the schema, which also words the errors.
 */
function quickPart(value: unknown): PutOperation | DeleteOperation | undefined {
  if (!isPlainObject(value)) return undefined
  const { op, table, key, item } = value
  let fields = 0
  for (const _ in value) fields++
  if (op === 'put' ? fields !== 4 || !isPlainObject(item) : op !== 'delete' || fields !== 3) return undefined
  if (typeof table !== 'string' || !TABLE_PATTERN.test(table) || !isPlainObject(key)) return undefined
  let columns = 0
  for (const column in key) {
    const k = typeof key[column]
    if (k !== 'string' && k !== 'number' && k !== 'boolean') return undefined
    columns++
  }
  if (columns === 0) return undefined
  return value as PutOperation | DeleteOperation
}

/** The parts of an operation, in order (a put or delete is a batch of one). */
export function partsOf(operation: Operation): PartOperation[] {
  return operation.op === 'batch' ? operation.parts : [operation]
}

/** A stable text form of a key, the same whatever the order of its columns. */
export function canonicalKey(key: Record<string, string | number | boolean>): string {
  const columns = Object.keys(key)
  // Most keys have one column: nothing to sort.
  if (columns.length === 1) return JSON.stringify([[columns[0], key[columns[0]!]]])
  return JSON.stringify(columns.sort().map((column) => [column, key[column]]))
}
