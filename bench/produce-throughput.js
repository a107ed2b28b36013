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
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DatabaseSync } from 'node:sqlite'

// The very statements wal runs: Node 24 strips the types of this .ts file on import, and schema.ts
// imports nothing, so the baseline cannot drift from the real schema.
import { DDL, INSERT_RECORD, PRAGMAS } from '../src/lib/log/embedded/schema.ts'
import { BIN, ROOT, benchSandbox, countLabel, countRecords, fmt, median, recordsOption, runOrExit, spawnTimed, throughput, writeInput } from './lib.js'

// Mirrors MAX_BATCH_RECORDS in src/lib/produce/produce.ts (not imported: produce.ts pulls in the config
// loader and other modules that plain Node cannot resolve from source).
const BATCH_RECORDS = 1000
// Mirrors DEFAULTS.partitions in src/lib/config/schema.ts: wal's zero-config partition count.
const PARTITIONS = 8
const RUNS = 3
const NAMESPACE = 'bench'
const AIM = 0.8

const records = recordsOption(100_000)
const sandbox = benchSandbox('produce')
const { work, cwd } = sandbox

/** Both sides insert the same rows; generated once, outside any timing. */
const inputPath = join(work, 'input.ndjson')
const { keys, payloads, meanPayload } = writeInput(inputPath, records)

/** One `wal produce` run: wall time from spawn to exit, i.e. what a user waits for. */
async function runWal(run) {
  const walHome = join(work, `wal-${run}`)
  // stdout (one ack line per record) goes to /dev/null: the bench measures wal, not a pipe reader.
  const { code, stderr, ms, cpuMs } = await spawnTimed([BIN, 'produce', '-n', NAMESPACE], { cwd, env: sandbox.env(walHome), inputFile: inputPath, stdout: 'ignore' })
  if (code !== 0) throw new Error(`wal produce exited ${code}:\n${stderr}`)
  const count = countRecords(join(walHome, 'embedded', `${NAMESPACE}.db`))
  if (count !== records) throw new Error(`wal produce exited 0 but the log holds ${count} records, not ${records}`)
  rmSync(walHome, { recursive: true, force: true })
  walCpuMs.push(cpuMs)
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
    rows[i] = [partition, next[partition]++, id, keys[i], nowMs, nowMs, null, null, null, 0, null, payloads[i], null, nowMs * 1000 + i]
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
  const loader = join(ROOT, 'bench', 'raw-produce.js')
  const { code, stderr, ms, cpuMs } = await spawnTimed([loader, path], { cwd, env: process.env, inputFile: inputPath, stdout: 'ignore' })
  if (code !== 0) throw new Error(`raw loader exited ${code}:\n${stderr}`)
  const count = countRecords(path)
  if (count !== records) throw new Error(`raw loader wrote ${count} records, not ${records}`)
  rmSync(dir, { recursive: true, force: true })
  loaderCpuMs.push(cpuMs)
  return ms
}

// CPU time (user + system, every thread) of each process: wal's per mutation against the loader's.
const walCpuMs = []
const loaderCpuMs = []
const walMs = []
const rawMs = []
const loaderMs = []
await runOrExit(async () => {
  // Alternate, so a slow patch of the machine (or a warming disk cache) does not favour one side.
  for (let run = 0; run < RUNS; run++) {
    walMs.push(await runWal(run))
    loaderMs.push(await runRawLoader(run))
    rawMs.push(runRaw(run))
    console.log(`run ${run + 1}/${RUNS}: wal ${walMs[run].toFixed(0)} ms, raw loader ${loaderMs[run].toFixed(0)} ms, insert floor ${rawMs[run].toFixed(0)} ms`)
  }
}, sandbox.cleanup)

const { medianMs: walMedian, perSec: walPerSec } = throughput(records, walMs)
const { medianMs: rawMedian, perSec: rawPerSec } = throughput(records, rawMs)
const { medianMs: loaderMedian, perSec: loaderPerSec } = throughput(records, loaderMs)
const ratio = walPerSec / rawPerSec
const loaderRatio = walPerSec / loaderPerSec
console.log(
  `produce ${countLabel(records)} x ~${meanPayload}B durable: wal ${fmt(walPerSec)}/s; raw loader ${fmt(loaderPerSec)}/s (ratio ${loaderRatio.toFixed(2)}x, aim >= ${AIM}x); insert floor ${fmt(rawPerSec)}/s (ratio ${ratio.toFixed(2)}x)`,
)
const cpuRatio = median(walCpuMs) / median(loaderCpuMs)
console.log(`CPU per mutation: wal ${((median(walCpuMs) / records) * 1000).toFixed(1)} us, raw loader ${((median(loaderCpuMs) / records) * 1000).toFixed(1)} us (ratio ${cpuRatio.toFixed(2)}x, aim <= 1.25x)`)
console.log(
  JSON.stringify({
    bench: 'produce-throughput',
    walCpuMs: walCpuMs.map((ms) => Math.round(ms)),
    loaderCpuMs: loaderCpuMs.map((ms) => Math.round(ms)),
    cpuRatio: Number(cpuRatio.toFixed(3)),
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
