// The peer for bench/cassandra-apply.js: what someone would write instead of `wal consume` with a
// Cassandra target — read the puts (NDJSON, as `wal produce` took them), and insert them with
// cassandra-driver's executeConcurrent: the same prepared statement wal uses (same columns, same order,
// USING TIMESTAMP), the same concurrency, the same consistency. No log, no offsets, no retries.
//
//   node bench/raw-cassandra-apply.js CONTACT_POINT DATACENTER KEYSPACE INPUT CONCURRENCY
import { readFileSync } from 'node:fs'

import cassandra from 'cassandra-driver'

const [contactPoint, localDataCenter, keyspace, input, concurrencyText] = process.argv.slice(2)
const concurrencyLevel = Number(concurrencyText)
const client = new cassandra.Client({
  contactPoints: [contactPoint],
  localDataCenter,
  queryOptions: { consistency: cassandra.types.consistencies.localQuorum, prepare: true, isIdempotent: true },
})
await client.connect()
const base = Date.now() * 1000
const params = []
let query
for (const line of readFileSync(input, 'utf8').split('\n')) {
  if (line === '') continue
  const { payload } = JSON.parse(line)
  const values = { ...payload.item, ...payload.key }
  const names = Object.keys(values)
  // The statement wal builds for a put (src/lib/targets/cassandra/statements.ts), word for word.
  query ??= `INSERT INTO "${keyspace}"."${payload.table}" (${names.map((n) => `"${n}"`).join(', ')}) VALUES (${names.map(() => '?').join(', ')}) USING TIMESTAMP ?`
  params.push([...names.map((n) => values[n]), cassandra.types.Long.fromNumber(base + params.length)])
}
const result = await cassandra.concurrent.executeConcurrent(client, query, params, { concurrencyLevel, executionProfile: undefined, raiseOnFirstError: true })
if (result.errors.length > 0) throw result.errors[0]
await client.shutdown()
