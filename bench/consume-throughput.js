// Consume throughput: `wal consume --until-idle` applying a namespace's log to an NDJSON file target,
// against a raw loop in the same run: a process that pages through the same log database with
// node:sqlite, turns each row into one JSON line and appends + fsyncs each page (what you would write
// instead of wal to copy a log to a file). Both are timed from spawn to exit, runs alternate, and the
// result is reported as a throughput ratio.
//
// With --target kv, wal applies put operations to the kv target instead, and the raw loop does the same
// durable work by hand: pages through the log, parses each payload, runs the kv target's upsert on a
// SQLite file (WAL, synchronous=FULL, one transaction per page), then commits its offsets in another
// SQLite file (synchronous=FULL) — read, the same upsert, a durable offset.
//
//   npm run build && node bench/consume-throughput.js [--records N] [--target kv]
//
// Reports; does not gate on the ratio. Exits 1 only when wal fails or its output is wrong.
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { parseArgs } from 'node:util'

import { BIN, benchSandbox, countLabel, countRecords, fmt, keyFor, median, recordsOption, runOrExit, spawnTimed, throughput, writeInput } from './lib.js'

// DEFAULTS.partitions in src/lib/config/schema.ts, written into the config so the bench does not depend on it.
const PARTITIONS = 8
// Rows the raw loop reads, writes and fsyncs at a time: a sensible batch for a hand-written copier.
const PAGE_RECORDS = 1000
const CONCURRENCY = 64
const RUNS = 3
const NAMESPACE = 'bench'
const TARGET = 'out'

const TARGET_OPTION = { target: { type: 'string', default: 'file' } }
const records = recordsOption(100_000, TARGET_OPTION)
const targetType = parseArgs({ options: { records: { type: 'string' }, ...TARGET_OPTION } }).values.target
if (targetType !== 'file' && targetType !== 'kv') {
  console.error(`--target must be file or kv, not "${targetType}"`)
  process.exit(2)
}
const KV = targetType === 'kv'
// Issue 21's goals, as throughput ratios to the raw loop (raw's CPU / wal's CPU; wall time reported beside).
const AIM = KV ? 0.75 : 0.8

// The raw side, written to the temp dir at run time and run as its own process, so it pays the same
// Node start-up as `wal consume` does. Reads in seq order (the log's append order), one page at a time.
const RAW_CONSUMER = `
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'

const [dbPath, outPath] = process.argv.slice(2)
const db = new DatabaseSync(dbPath, { readOnly: true })
const page = db.prepare('SELECT * FROM records WHERE seq > ? ORDER BY seq LIMIT ${PAGE_RECORDS}')
const fd = openSync(outPath, 'a')
let cursor = 0
for (;;) {
  const rows = page.all(cursor)
  if (rows.length === 0) break
  let text = ''
  for (const row of rows) text += JSON.stringify(row) + '\\n'
  const bytes = Buffer.from(text)
  let written = 0
  while (written < bytes.length) written += writeSync(fd, bytes, written)
  fsyncSync(fd)
  cursor = rows[rows.length - 1].seq
}
closeSync(fd)
db.close()
`

// The kv side: the kv target's table and upsert (src/lib/targets/kv/kv-target.ts), a put's key in its
// canonical text form, and the offsets committed durably after each page's upserts are.
const RAW_KV_CONSUMER = `
import { DatabaseSync } from 'node:sqlite'

const [dbPath, kvPath, offsetsPath] = process.argv.slice(2)
const db = new DatabaseSync(dbPath, { readOnly: true })
const page = db.prepare('SELECT * FROM records WHERE seq > ? ORDER BY seq LIMIT ${PAGE_RECORDS}')
const kv = new DatabaseSync(kvPath)
kv.exec('PRAGMA journal_mode = WAL')
kv.exec('PRAGMA synchronous = FULL')
kv.exec('CREATE TABLE IF NOT EXISTS items (tbl TEXT NOT NULL, pk TEXT NOT NULL, item TEXT, deleted INTEGER NOT NULL, written_at INTEGER NOT NULL, mutation_id TEXT NOT NULL, PRIMARY KEY (tbl, pk)) WITHOUT ROWID')
const upsert = kv.prepare(\`INSERT INTO items (tbl, pk, item, deleted, written_at, mutation_id) VALUES (?, ?, ?, 0, ?, ?)
  ON CONFLICT (tbl, pk) DO UPDATE SET item = excluded.item, deleted = excluded.deleted, written_at = excluded.written_at, mutation_id = excluded.mutation_id
  WHERE (excluded.written_at, excluded.mutation_id) >= (items.written_at, items.mutation_id)\`)
const state = new DatabaseSync(offsetsPath)
state.exec('PRAGMA journal_mode = WAL')
state.exec('PRAGMA synchronous = FULL')
state.exec('CREATE TABLE IF NOT EXISTS offsets (partition INTEGER PRIMARY KEY, offset INTEGER NOT NULL)')
const commitOffset = state.prepare('INSERT INTO offsets (partition, offset) VALUES (?, ?) ON CONFLICT (partition) DO UPDATE SET offset = excluded.offset')
let cursor = 0
for (;;) {
  const rows = page.all(cursor)
  if (rows.length === 0) break
  const offsets = new Map()
  kv.exec('BEGIN IMMEDIATE')
  for (const row of rows) {
    const op = JSON.parse(row.payload)
    const pk = JSON.stringify(Object.keys(op.key).sort().map((column) => [column, op.key[column]]))
    upsert.run(op.table, pk, JSON.stringify(op.item), row.created_at_us === null ? row.created_at : row.created_at_us / 1000, row.id)
    offsets.set(row.partition, row.offset + 1)
  }
  kv.exec('COMMIT')
  state.exec('BEGIN IMMEDIATE')
  for (const [partition, offset] of offsets) commitOffset.run(partition, offset)
  state.exec('COMMIT')
  cursor = rows[rows.length - 1].seq
}
db.close()
kv.close()
state.close()
`

/** Put operations of about 200 B, one distinct item key each (the kv target needs a key; the file bench's payloads have none). */
function writeKvInput(path, count) {
  let ndjson = ''
  let payloadBytes = 0
  for (let i = 0; i < count; i++) {
    const payload = { op: 'put', table: 'orders', key: { id: i }, item: { id: i, user: keyFor(i), sku: `SKU-${(i * 7919) % 100000}`, qty: (i % 9) + 1, cents: (i * 131) % 100000, note: '' } }
    payload.item.note = 'x'.repeat(Math.max(0, 200 - JSON.stringify(payload).length))
    const text = JSON.stringify(payload)
    payloadBytes += text.length
    ndjson += `{"key":"${keyFor(i)}","payload":${text}}\n`
  }
  writeFileSync(path, ndjson)
  return { meanPayload: Math.round(payloadBytes / count) }
}

// The sandbox keeps user config out: the .walrc.json written below is the only config wal finds.
const sandbox = benchSandbox('consume')
const { work, cwd } = sandbox
const walOut = join(work, KV ? 'wal-out.db' : 'wal-out.ndjson')
const rawOut = join(work, KV ? 'raw-out.db' : 'raw-out.ndjson')
const rawOffsets = join(work, 'raw-offsets.db')
writeFileSync(
  join(cwd, '.walrc.json'),
  JSON.stringify({ namespaces: { [NAMESPACE]: { partitions: PARTITIONS, targets: { [TARGET]: { type: KV ? 'kv' : 'file', path: walOut } } } } }),
)
const rawScript = join(work, 'raw-consume.js')
writeFileSync(rawScript, KV ? RAW_KV_CONSUMER : RAW_CONSUMER)

/** The input, generated once, outside any timing. */
const inputPath = join(work, 'input.ndjson')
const { meanPayload } = KV ? writeKvInput(inputPath, records) : writeInput(inputPath, records)

/** A kv store holds every record's item once, as a live (not deleted) item. */
function checkKv(path, who) {
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    const { n, bytes } = db.prepare('SELECT count(*) AS n, sum(length(item)) AS bytes FROM items WHERE deleted = 0').get()
    if (n !== records) throw new Error(`${who} holds ${n} items, not ${records}`)
    return bytes / records
  } finally {
    db.close()
  }
}

/** Removes an output (a kv store's -wal and -shm files too). */
function removeOutput(path) {
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true })
}

/** Every line of an output file is one record, and every record is there exactly once (by id). */
function checkOutput(path, who) {
  const text = readFileSync(path, 'utf8')
  const lines = text.split('\n')
  if (lines.pop() !== '') throw new Error(`${who} output does not end with a newline`)
  if (lines.length !== records) throw new Error(`${who} wrote ${lines.length} lines, not ${records}`)
  const ids = new Set(lines.map((line) => JSON.parse(line).id))
  if (ids.size !== records) throw new Error(`${who} wrote ${ids.size} distinct ids, not ${records}`)
  return text.length / records
}

/** Setup of one run (not timed): a fresh WAL_HOME holding the records, produced by wal itself. */
async function produce(walHome) {
  const { code, stderr } = await spawnTimed([BIN, 'produce', '-n', NAMESPACE], { cwd, env: sandbox.env(walHome), inputFile: inputPath })
  if (code !== 0) throw new Error(`wal produce exited ${code}:\n${stderr}`)
  const dbPath = join(walHome, 'embedded', `${NAMESPACE}.db`)
  const count = countRecords(dbPath)
  if (count !== records) throw new Error(`setup: wal produce exited 0 but the log holds ${count} records, not ${records}`)
  return dbPath
}

/** One `wal consume` run: wall time from spawn to exit, i.e. what a user waits for. */
async function runWal(walHome) {
  removeOutput(walOut)
  const args = [BIN, 'consume', '-n', NAMESPACE, '--until-idle', '--json', '--concurrency', String(CONCURRENCY)]
  const { code, stdout, stderr, ms, cpuMs } = await spawnTimed(args, { cwd, env: sandbox.env(walHome) })
  if (code !== 0) throw new Error(`wal consume exited ${code}:\n${stderr}`)
  let summary
  try {
    summary = JSON.parse(stdout)
  } catch {
    throw new Error(`wal consume printed no JSON summary:\n${stdout}`)
  }
  const stats = summary.targets?.find((t) => t.target === TARGET)
  if (stats?.applied !== records || stats.lag !== 0) {
    throw new Error(`wal consume exited 0 but its summary says applied ${stats?.applied}, lag ${stats?.lag} (want ${records}, 0)`)
  }
  const lineBytes = KV ? checkKv(walOut, 'wal consume') : checkOutput(walOut, 'wal consume')
  removeOutput(walOut)
  return { ms, cpuMs, lineBytes }
}

/** One run of the raw loop over the same log database: wall time from spawn to exit, like wal's. */
async function runRaw(dbPath) {
  removeOutput(rawOut)
  removeOutput(rawOffsets)
  const { code, stderr, ms, cpuMs } = await spawnTimed([rawScript, dbPath, rawOut, rawOffsets], { cwd, env: process.env })
  if (code !== 0) throw new Error(`raw loop exited ${code}:\n${stderr}`)
  const lineBytes = KV ? checkKv(rawOut, 'raw loop') : checkOutput(rawOut, 'raw loop')
  removeOutput(rawOut)
  removeOutput(rawOffsets)
  return { ms, cpuMs, lineBytes }
}

const walMs = []
const rawMs = []
// CPU time (user + system) of each process: steadier than wall time on a busy machine.
const walCpuMs = []
const rawCpuMs = []
let walLineBytes = 0
let rawLineBytes = 0
await runOrExit(async () => {
  for (let r = 0; r < RUNS; r++) {
    const walHome = join(work, `wal-${r}`)
    const dbPath = await produce(walHome)
    // Both read the same freshly produced log (the raw loop only reads it). Which goes first alternates,
    // so neither always gets the colder page cache or the database before or after wal's consumer state.
    const sides = [
      async () => {
        const wal = await runWal(walHome)
        walMs.push(wal.ms)
        walCpuMs.push(wal.cpuMs)
        walLineBytes = wal.lineBytes
      },
      async () => {
        const raw = await runRaw(dbPath)
        rawMs.push(raw.ms)
        rawCpuMs.push(raw.cpuMs)
        rawLineBytes = raw.lineBytes
      },
    ]
    if (r % 2 === 1) sides.reverse()
    for (const side of sides) await side()
    rmSync(walHome, { recursive: true, force: true })
    console.log(`run ${r + 1}/${RUNS}: wal ${walMs[r].toFixed(0)} ms, raw loop ${rawMs[r].toFixed(0)} ms`)
  }
}, sandbox.cleanup)

const { medianMs: walMedian, perSec: walPerSec } = throughput(records, walMs)
const { medianMs: rawMedian, perSec: rawPerSec } = throughput(records, rawMs)
const ratio = walPerSec / rawPerSec
console.log(
  `consume ${countLabel(records)} x ~${meanPayload}B -> ${KV ? 'kv target' : 'NDJSON file'}: wal ${fmt(walPerSec)}/s; raw loop ${fmt(rawPerSec)}/s (ratio ${ratio.toFixed(2)}x, aim >= ${AIM}x)`,
)
const cpuRatio = median(rawCpuMs) / median(walCpuMs)
console.log(`CPU: wal ${Math.round(median(walCpuMs))} ms, raw loop ${Math.round(median(rawCpuMs))} ms (raw/wal ${cpuRatio.toFixed(2)}x, as a throughput ratio; aim >= ${AIM}x)`)
console.log(
  JSON.stringify({
    bench: 'consume-throughput',
    target: KV ? 'kv' : 'file',
    walCpuMs: walCpuMs.map((ms) => Math.round(ms)),
    rawCpuMs: rawCpuMs.map((ms) => Math.round(ms)),
    cpuRatio: Number(cpuRatio.toFixed(3)),
    records,
    payloadBytes: meanPayload,
    partitions: PARTITIONS,
    concurrency: CONCURRENCY,
    pageRecords: PAGE_RECORDS,
    runs: RUNS,
    walMs: walMs.map((ms) => Math.round(ms)),
    rawMs: rawMs.map((ms) => Math.round(ms)),
    walMedianMs: Math.round(walMedian),
    rawMedianMs: Math.round(rawMedian),
    walPerSec: Math.round(walPerSec),
    rawPerSec: Math.round(rawPerSec),
    ratio: Number(ratio.toFixed(3)),
    aim: AIM,
    walLineBytes: Math.round(walLineBytes),
    rawLineBytes: Math.round(rawLineBytes),
    node: process.version,
  }),
)
