// The peer for bench/produce-throughput.js: what someone would write instead of `wal produce` — read
// NDJSON from stdin, parse each line, insert the same row into the same schema with node:sqlite, commit
// every BATCH_RECORDS lines. No validation, ids from a counter, no acks: the least a durable loader does.
//
//   node bench/raw-produce.js DB_PATH < input.ndjson
import { createInterface } from 'node:readline'
import { DatabaseSync } from 'node:sqlite'

import { DDL, INSERT_RECORD, PRAGMAS } from '../src/lib/log/embedded/schema.ts'

const BATCH_RECORDS = 1000 // mirrors MAX_BATCH_RECORDS in src/lib/produce/produce.ts
const PARTITIONS = 8 // mirrors DEFAULTS.partitions in src/lib/config/schema.ts

const db = new DatabaseSync(process.argv[2], { timeout: 30_000 })
for (const pragma of PRAGMAS) db.exec(pragma)
db.exec(DDL)
const insert = db.prepare(INSERT_RECORD)
const next = new Array(PARTITIONS).fill(0)
let pending = 0
let n = 0
db.exec('BEGIN IMMEDIATE')
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (line === '') continue
  const { key, payload } = JSON.parse(line)
  let h = 0
  for (let c = 0; c < key.length; c++) h = (Math.imul(h, 31) + key.charCodeAt(c)) | 0
  const partition = (h >>> 0) % PARTITIONS
  const now = Date.now()
  insert.run(partition, next[partition]++, `01RAW${String(n++).padStart(21, '0')}`, key, now, now, null, null, null, 0, null, JSON.stringify(payload), null, now * 1000 + n)
  if (++pending === BATCH_RECORDS) {
    db.exec('COMMIT')
    db.exec('BEGIN IMMEDIATE')
    pending = 0
  }
}
db.exec('COMMIT')
db.close()
