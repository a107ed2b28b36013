// Durable produce throughput: `wal produce` fed NDJSON on stdin, against two baselines in the same run,
// alternating so machine noise hits all alike:
// - raw loader: bench/raw-produce.js, a process that reads the same NDJSON, parses it and inserts the same
//   rows with node:sqlite in the same transaction size (what you would write instead of wal);
// - insert floor: the same inserts and commits in this process, rows prepared beforehand (SQLite alone).
// Results are reported as throughput ratios.
//
//   npm run build && node bench/produce-throughput.js [--records N]
//
// Reports; does not gate on the ratio. Exits 1 only when wal fails or loses records.
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

// The very statements wal runs: Node 24 strips the types of this .ts file on import, and schema.ts
// imports nothing, so the baseline cannot drift from the real schema.
import { DDL, INSERT_RECORD, PRAGMAS } from '../src/lib/log/embedded/schema.ts'

// Mirrors MAX_BATCH_RECORDS in src/lib/produce/produce.ts (not imported: produce.ts pulls in the config
// loader and other modules that plain Node cannot resolve from source).
const BATCH_RECORDS = 1000
// Mirrors DEFAULTS.partitions in src/lib/config/schema.ts: wal's zero-config partition count.
const PARTITIONS = 8
const RUNS = 3
const KEYS = 5000
const NAMESPACE = 'bench'
const AIM = 0.8

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = join(root, 'bin', 'run.js')

const { values } = parseArgs({ options: { records: { type: 'string', default: '100000' } } })
const records = Number(values.records)
if (!Number.isInteger(records) || records <= 0) {
  console.error(`--records must be a positive whole number, not "${values.records}"`)
  process.exit(2)
}

/** A deterministic ~200-byte JSON payload: same input every run, so runs compare. */
function payloadFor(i) {
  const payload = {
    op: 'put',
    table: 'orders',
    item: { id: i, user: `user-${i % KEYS}`, sku: `SKU-${(i * 7919) % 100000}`, qty: (i % 9) + 1, cents: (i * 131) % 100000 },
    note: '',
  }
  // Pad to 200 bytes so every payload is the same size whatever the digits of i.
  payload.note = 'x'.repeat(Math.max(0, 200 - JSON.stringify(payload).length))
  return JSON.stringify(payload)
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
const fmt = (n) => Math.round(n).toLocaleString('en-US')

const work = mkdtempSync(join(tmpdir(), 'wal-bench-produce-'))
// An empty HOME and XDG_CONFIG_HOME, and a cwd inside that HOME: cosmiconfig's search stops at HOME,
// so no user or project config can change what is measured.
const home = join(work, 'home')
const cwd = join(home, 'cwd')
const xdgConfig = join(work, 'xdg-config')
mkdirSync(cwd, { recursive: true })
mkdirSync(xdgConfig)

/** Both sides insert the same rows; generated once, outside any timing. */
const payloads = new Array(records)
const keys = new Array(records)
let ndjson = ''
let payloadBytes = 0
for (let i = 0; i < records; i++) {
  keys[i] = `user-${i % KEYS}`
  payloads[i] = payloadFor(i)
  payloadBytes += payloads[i].length
  ndjson += `{"key":"${keys[i]}","payload":${payloads[i]}}\n`
}
const inputPath = join(work, 'input.ndjson')
writeFileSync(inputPath, ndjson)
ndjson = ''
const meanPayload = Math.round(payloadBytes / records)

function countRecords(dbPath) {
  const db = new DatabaseSync(dbPath, { readOnly: true })
  try {
    return db.prepare('SELECT count(*) AS n FROM records').get().n
  } finally {
    db.close()
  }
}

/** One `wal produce` run: wall time from spawn to exit, i.e. what a user waits for. */
async function runWal(run) {
  const walHome = join(work, `wal-${run}`)
  const env = { ...process.env, WAL_HOME: walHome, HOME: home, XDG_CONFIG_HOME: xdgConfig }
  delete env.WAL_CONFIG // an inherited explicit config would defeat the empty HOME
  // NODE_ENV=development|test puts oclif in dev mode, which loads the TypeScript compiler: not a user's run.
  delete env.NODE_ENV
  const stdin = openSync(inputPath, 'r')
  let stderr = ''
  const started = performance.now()
  const code = await new Promise((resolve, reject) => {
    // stdout (one ack line per record) goes to /dev/null: the bench measures wal, not a pipe reader.
    const child = spawn(process.execPath, [bin, 'produce', '-n', NAMESPACE], { cwd, env, stdio: [stdin, 'ignore', 'pipe'] })
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (c, signal) => resolve(c ?? signal))
  })
  const ms = performance.now() - started
  closeSync(stdin)
  if (code !== 0) throw new Error(`wal produce exited ${code}:\n${stderr}`)
  const count = countRecords(join(walHome, 'embedded', `${NAMESPACE}.db`))
  if (count !== records) throw new Error(`wal produce exited 0 but the log holds ${count} records, not ${records}`)
  rmSync(walHome, { recursive: true, force: true })
  return ms
}

/** Precomputed rows for the raw side: partition by a cheap hash (same number of inserts), 26-char ids. */
function rawRows(nowMs) {
  const next = new Array(PARTITIONS).fill(0)
  const rows = new Array(records)
  for (let i = 0; i < records; i++) {
    let h = 0
    for (let c = 0; c < keys[i].length; c++) h = (Math.imul(h, 31) + keys[i].charCodeAt(c)) | 0
    const partition = (h >>> 0) % PARTITIONS
    const id = `01BENCH${String(i).padStart(19, '0')}` // ULID length; content does not matter to SQLite
    rows[i] = [partition, next[partition]++, id, keys[i], nowMs, nowMs, null, null, null, 0, null, payloads[i], null]
  }
  return rows
}

/** One raw run: the same transactions wal makes, without a CLI, parsing or acks around them. */
function runRaw(run) {
  const dir = join(work, `raw-${run}`)
  mkdirSync(dir)
  const path = join(dir, `${NAMESPACE}.db`)
  const db = new DatabaseSync(path, { timeout: 30_000 })
  for (const pragma of PRAGMAS) db.exec(pragma)
  db.exec(DDL)
  const insert = db.prepare(INSERT_RECORD)
  const rows = rawRows(Date.now())
  const started = performance.now()
  for (let at = 0; at < rows.length; at += BATCH_RECORDS) {
    db.exec('BEGIN IMMEDIATE')
    const end = Math.min(at + BATCH_RECORDS, rows.length)
    for (let i = at; i < end; i++) insert.run(...rows[i])
    db.exec('COMMIT')
  }
  const ms = performance.now() - started
  db.close()
  const count = countRecords(path)
  if (count !== records) throw new Error(`raw baseline wrote ${count} records, not ${records}`)
  rmSync(dir, { recursive: true, force: true })
  return ms
}

/** One run of the hand-written loader: wall time from spawn to exit, like wal's. */
async function runRawLoader(run) {
  const dir = join(work, `loader-${run}`)
  mkdirSync(dir)
  const path = join(dir, `${NAMESPACE}.db`)
  const stdin = openSync(inputPath, 'r')
  let stderr = ''
  const started = performance.now()
  const code = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bench', 'raw-produce.js'), path], { cwd, stdio: [stdin, 'ignore', 'pipe'] })
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (c, signal) => resolve(c ?? signal))
  })
  const ms = performance.now() - started
  closeSync(stdin)
  if (code !== 0) throw new Error(`raw loader exited ${code}:\n${stderr}`)
  const count = countRecords(path)
  if (count !== records) throw new Error(`raw loader wrote ${count} records, not ${records}`)
  rmSync(dir, { recursive: true, force: true })
  return ms
}

const walMs = []
const rawMs = []
const loaderMs = []
let failed = false
try {
  // Alternate, so a slow patch of the machine (or a warming disk cache) does not favour one side.
  for (let run = 0; run < RUNS; run++) {
    walMs.push(await runWal(run))
    loaderMs.push(await runRawLoader(run))
    rawMs.push(runRaw(run))
    console.log(`run ${run + 1}/${RUNS}: wal ${walMs[run].toFixed(0)} ms, raw loader ${loaderMs[run].toFixed(0)} ms, insert floor ${rawMs[run].toFixed(0)} ms`)
  }
} catch (error) {
  console.error(`bench failed: ${error.message}`)
  failed = true
} finally {
  rmSync(work, { recursive: true, force: true })
}
if (failed) process.exit(1)

const walMedian = median(walMs)
const rawMedian = median(rawMs)
const walPerSec = (records / walMedian) * 1000
const rawPerSec = (records / rawMedian) * 1000
const ratio = walPerSec / rawPerSec
const loaderMedian = median(loaderMs)
const loaderPerSec = (records / loaderMedian) * 1000
const loaderRatio = walPerSec / loaderPerSec
const label = records % 1000 === 0 ? `${records / 1000}k` : String(records)
console.log(
  `produce ${label} x ~${meanPayload}B durable: wal ${fmt(walPerSec)}/s; raw loader ${fmt(loaderPerSec)}/s (ratio ${loaderRatio.toFixed(2)}x, aim >= ${AIM}x); insert floor ${fmt(rawPerSec)}/s (ratio ${ratio.toFixed(2)}x)`,
)
console.log(
  JSON.stringify({
    bench: 'produce-throughput',
    records,
    payloadBytes: meanPayload,
    batchRecords: BATCH_RECORDS,
    runs: RUNS,
    walMs: walMs.map((ms) => Math.round(ms)),
    rawMs: rawMs.map((ms) => Math.round(ms)),
    loaderMs: loaderMs.map((ms) => Math.round(ms)),
    loaderMedianMs: Math.round(loaderMedian),
    loaderPerSec: Math.round(loaderPerSec),
    loaderRatio: Number(loaderRatio.toFixed(3)),
    walMedianMs: Math.round(walMedian),
    rawMedianMs: Math.round(rawMedian),
    walPerSec: Math.round(walPerSec),
    rawPerSec: Math.round(rawPerSec),
    ratio: Number(ratio.toFixed(3)),
    aim: AIM,
    node: process.version,
  }),
)
