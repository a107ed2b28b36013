// What the benches share: where wal is, a sandbox no user config can reach, the input they feed wal,
// spawning and timing a process, and the statistics they report. bench/raw-produce.js does not use it:
// it stands for what a user would write instead of wal, so it stays a file of its own.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
// The built CLI, as a user runs it (`npm run build` first), not the sources.
export const BIN = join(ROOT, 'bin', 'run.js')

/**
 * A temp work dir with an empty HOME and XDG_CONFIG_HOME, and a cwd inside that HOME: cosmiconfig's
 * search stops at HOME, so no user or project config (only one a bench writes into cwd) can change what
 * is measured.
 */
export function benchSandbox(prefix) {
  const work = mkdtempSync(join(tmpdir(), `wal-bench-${prefix}-`))
  const home = join(work, 'home')
  const cwd = join(home, 'cwd')
  const xdgConfig = join(work, 'xdg-config')
  mkdirSync(cwd, { recursive: true })
  mkdirSync(xdgConfig)
  return {
    work,
    home,
    cwd,
    xdgConfig,
    /** The environment for a wal run whose state lives in walHome. */
    env(walHome) {
      const env = { ...process.env, WAL_HOME: walHome, HOME: home, XDG_CONFIG_HOME: xdgConfig }
      delete env.WAL_CONFIG // an inherited explicit config would defeat the empty HOME
      return env
    },
    cleanup() {
      rmSync(work, { recursive: true, force: true })
    },
  }
}

/**
 * Runs a bench's measuring part; whatever happens, cleanup runs after it. A failure is reported as
 * `bench failed: …` and exits 1, so a broken wal never passes for a slow one.
 */
export async function runOrExit(body, cleanup) {
  let failed = false
  try {
    await body()
  } catch (error) {
    console.error(`bench failed: ${error.message}`)
    failed = true
  } finally {
    await cleanup()
  }
  if (failed) process.exit(1)
}

/** `--records N` (a positive whole number), or defaultCount; exits 2 on anything else. */
export function recordsOption(defaultCount, otherOptions = {}) {
  const { values } = parseArgs({ options: { records: { type: 'string', default: String(defaultCount) }, ...otherOptions } })
  const records = Number(values.records)
  if (!Number.isInteger(records) || records <= 0) {
    console.error(`--records must be a positive whole number, not "${values.records}"`)
    process.exit(2)
  }
  return records
}

/** How a record count is shown in a headline: 20000 → "20k", 1000000 → "1M". */
export const countLabel = (n) => (n % 1_000_000 === 0 ? `${n / 1_000_000}M` : n % 1000 === 0 ? `${n / 1000}k` : String(n))

/** Distinct keys in the input: enough that partitions fill evenly, few enough that keys repeat. */
export const KEYS = 5000
export const keyFor = (i) => `user-${i % KEYS}`

/** A deterministic ~200-byte JSON payload: same input every run and in every bench, so figures compare. */
export function payloadFor(i) {
  const payload = {
    op: 'put',
    table: 'orders',
    item: { id: i, user: keyFor(i), sku: `SKU-${(i * 7919) % 100000}`, qty: (i % 9) + 1, cents: (i * 131) % 100000 },
    note: '',
  }
  // Pad to 200 bytes so every payload is the same size whatever the digits of i.
  payload.note = 'x'.repeat(Math.max(0, 200 - JSON.stringify(payload).length))
  return JSON.stringify(payload)
}

/**
 * Writes `count` records as `wal produce` NDJSON input to path, once, outside any timing. Returns the
 * keys and payloads (for a baseline that inserts the same rows) and the mean payload size.
 */
export function writeInput(path, count) {
  const keys = new Array(count)
  const payloads = new Array(count)
  let ndjson = ''
  let payloadBytes = 0
  for (let i = 0; i < count; i++) {
    keys[i] = keyFor(i)
    payloads[i] = payloadFor(i)
    payloadBytes += payloads[i].length
    ndjson += `{"key":"${keys[i]}","payload":${payloads[i]}}\n`
  }
  writeFileSync(path, ndjson)
  return { keys, payloads, meanPayload: Math.round(payloadBytes / count) }
}

/** Rows in a wal log database: the check that a run that exited 0 also kept every record. */
export function countRecords(dbPath) {
  const db = new DatabaseSync(dbPath, { readOnly: true })
  try {
    return db.prepare('SELECT count(*) AS n FROM records').get().n
  } finally {
    db.close()
  }
}

// A preload that writes the process's CPU time (user + system, all its threads, from its start) and its
// peak resident memory (KiB) to the file named by WAL_BENCH_CPU_FILE when it exits: CPU time moves much less with machine load than wall time.
let cpuDir
function cpuPreload() {
  if (cpuDir === undefined) {
    cpuDir = mkdtempSync(join(tmpdir(), 'wal-bench-cpu-'))
    writeFileSync(
      join(cpuDir, 'cpu-on-exit.cjs'),
      "process.on('exit', () => { const u = process.cpuUsage(); require('node:fs').writeFileSync(process.env.WAL_BENCH_CPU_FILE, `${(u.user + u.system) / 1000} ${process.resourceUsage().maxRSS}`) })\n",
    )
    process.on('exit', () => rmSync(cpuDir, { recursive: true, force: true }))
  }
  return join(cpuDir, 'cpu-on-exit.cjs')
}
let cpuRuns = 0

/**
 * Spawns node with args and resolves with its exit code (or signal), stdout, stderr, the wall time
 * from spawn to exit (what a user waits for), its CPU time (cpuMs) and peak memory (maxRssKb). inputFile, if given, is its stdin
 * (else none); stdout: 'ignore' sends its output to /dev/null, for runs where reading a pipe would be
 * measured too; 'drain' gives it a pipe that is read and thrown away (as `wal … | other` has).
 */
export async function spawnTimed(args, { env, cwd, inputFile, stdout: stdoutMode = 'pipe' }) {
  const stdin = inputFile === undefined ? 'ignore' : openSync(inputFile, 'r')
  const preload = cpuPreload()
  const cpuFile = join(cpuDir, `cpu-${++cpuRuns}.txt`)
  try {
    let stdout = ''
    let stderr = ''
    const started = performance.now()
    let ms = 0
    const code = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['-r', preload, ...args], { cwd, env: { ...env, WAL_BENCH_CPU_FILE: cpuFile }, stdio: [stdin, stdoutMode === 'drain' ? 'pipe' : stdoutMode, 'pipe'] })
      if (stdoutMode === 'drain') child.stdout.resume()
      else child.stdout?.setEncoding('utf8').on('data', (d) => (stdout += d))
      child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
      child.on('error', reject)
      // Timed at exit; resolved at close, once its output is read to the end.
      child.on('exit', () => (ms = performance.now() - started))
      child.on('close', (c, signal) => resolve(c ?? signal))
    })
    let cpuMs = Number.NaN
    let maxRssKb = Number.NaN
    try {
      ;[cpuMs, maxRssKb] = readFileSync(cpuFile, 'utf8').split(' ').map(Number)
      rmSync(cpuFile)
    } catch {
      // Killed before its exit handlers ran: no CPU figure for this run.
    }
    return { code, stdout, stderr, ms, cpuMs, maxRssKb }
  } finally {
    if (typeof stdin === 'number') closeSync(stdin)
  }
}

/** The median; of an even count, the mean of the middle two. */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

/** A side's figure over its runs: the median run (one slow run should not move it) as records per second. */
export function throughput(count, runsMs) {
  const medianMs = median(runsMs)
  return { medianMs, perSec: (count / medianMs) * 1000 }
}

/** Nearest-rank percentile of an ascending array: a value that was actually measured. */
export function percentile(sorted, p) {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]
}

/** A rate for a headline: whole, with thousands separators. */
export const fmt = (n) => Math.round(n).toLocaleString('en-US')

/** Milliseconds for the JSON line: one decimal is all the precision a timed spawn has. */
export const round1 = (n) => Math.round(n * 10) / 10

/** A JSON payload of exactly `mib` MiB ({"blob":"<hex>"}), written to `dir`/payload.json for both sides of a bench. */
export function writeLargePayload(dir, mib) {
  const bytes = mib * 1024 * 1024
  const payload = `{"blob":"${randomBytes(Math.ceil(bytes / 2)).toString('hex').slice(0, bytes - 11)}"}`
  const path = join(dir, 'payload.json')
  writeFileSync(path, payload)
  return { payload, path }
}

/**
 * An embedded log of `count` records (the ~200-byte payloads of payloadFor, keys of keyFor, 8
 * partitions, as `wal produce` of writeInput's lines lays them out), written straight into wal's schema
 * with node:sqlite and kept between runs: a 10M-record log takes minutes to write even this way, and
 * `wal produce` of it longer. Kept in $WAL_BENCH_CACHE, else ~/.cache/wal-bench (never in the repo);
 * each bench copies it before writing to it. Records are spread over the last day, in commits of 1,000
 * (one append time each), so time-based lookups have history to search.
 */
export async function cachedLog(count) {
  const { DDL, PRAGMAS, INSERT_RECORD, SCHEMA_VERSION } = await import('../src/lib/log/embedded/schema.ts')
  const { partitionForKey } = await import('../src/lib/log/partitioner.ts')
  const dir = process.env.WAL_BENCH_CACHE || join(homedir(), '.cache', 'wal-bench')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, `log-${count}-schema${SCHEMA_VERSION}-v1.db`)
  if (existsSync(path)) return path
  const partial = `${path}.partial-${process.pid}`
  const started = performance.now()
  process.stderr.write(`writing a ${countLabel(count)}-record log to ${path} (once)…\n`)
  const PARTITIONS = 8
  const COMMIT = 1000
  const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
  const base32 = (n, width) => {
    let text = ''
    for (let i = 0; i < width; i++, n = Math.floor(n / 32)) text = CROCKFORD[n % 32] + text
    return text
  }
  const partitionOf = Array.from({ length: KEYS }, (_, k) => partitionForKey(keyFor(k), PARTITIONS))
  const db = new DatabaseSync(partial)
  try {
    db.exec('PRAGMA journal_mode = OFF')
    db.exec('PRAGMA synchronous = OFF')
    db.exec(DDL)
    const setMeta = db.prepare('INSERT INTO meta (name, value) VALUES (?, ?)')
    setMeta.run('schema_version', String(SCHEMA_VERSION))
    setMeta.run('namespace', 'bench')
    setMeta.run('partitions', String(PARTITIONS))
    setMeta.run('created_at', new Date().toISOString())
    const insert = db.prepare(INSERT_RECORD)
    const next = new Array(PARTITIONS).fill(0)
    const firstMs = Date.now() - 24 * 3600 * 1000
    const stepMs = (24 * 3600 * 1000 - 60_000) / Math.ceil(count / COMMIT)
    for (let i = 0; i < count; i += COMMIT) {
      const appendedAt = Math.floor(firstMs + (i / COMMIT) * stepMs)
      db.exec('BEGIN')
      for (let j = i; j < Math.min(count, i + COMMIT); j++) {
        const partition = partitionOf[j % KEYS]
        const createdAtUs = appendedAt * 1000 + (j - i)
        insert.run(partition, next[partition]++, base32(appendedAt, 10) + base32(j, 16), keyFor(j), appendedAt, appendedAt, null, null, null, 0, null, payloadFor(j), null, createdAtUs)
      }
      db.exec('COMMIT')
    }
    const setNext = db.prepare('INSERT INTO partitions (partition, next_offset) VALUES (?, ?)')
    for (let p = 0; p < PARTITIONS; p++) setNext.run(p, next[p])
    for (const pragma of PRAGMAS) db.exec(pragma)
  } finally {
    db.close()
  }
  renameSync(partial, path)
  process.stderr.write(`  written in ${((performance.now() - started) / 1000).toFixed(0)} s\n`)
  return path
}
