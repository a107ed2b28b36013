// HTTP produce into the daemon vs the CLI's produce, into the same embedded log, in the same run.
// - HTTP, one mutation per request: autocannon on loopback, C connections for D seconds; each answer
//   comes only once its mutation is durable, so the latency percentiles are those of a durable write.
// - HTTP, batches of 100 per request: the same, as a service that groups its writes would send them.
// - CLI stdin: `wal produce -n bench` of N NDJSON lines (group-committed), wall time from spawn to exit.
// - CLI one at a time: `wal produce -p …` spawned S times in a row, as a shell loop does: p50/p99.
// Also wal's CPU time per mutation (the daemon's from /proc while autocannon runs; the CLI's at exit):
// on a busy machine the HTTP client competes with the daemon for the same cores, CPU time much less so.
// The namespace declares no targets (`targets: {}`; without the key it would get the default kv target,
// whose consumer would compete with the writes and dead-letter every one of these payloads).
//
//   npm run build && node bench/http-produce.js [--records N]
//
// Reports; does not gate. Exits 1 when wal fails: a non-2xx answer, or the log not holding every ack.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'

import { BIN, benchSandbox, countRecords, fmt, keyFor, payloadFor, percentile, recordsOption, round1, runOrExit, spawnTimed, writeInput } from './lib.js'

const NAMESPACE = 'bench'
const CONNECTIONS = 32
const DURATION_S = 8
const BATCH = 100
const CLI_SINGLE_SAMPLES = 30

const records = recordsOption(100_000)
const sandbox = benchSandbox('http-produce')
const { work, cwd } = sandbox
const walHome = join(work, 'wal-home')
const env = sandbox.env(walHome)
const logPath = join(walHome, 'embedded', `${NAMESPACE}.db`)
writeFileSync(join(cwd, '.walrc.json'), JSON.stringify({ namespaces: { [NAMESPACE]: { partitions: 8, targets: {} } }, daemon: { port: 0, maxInFlight: 1024 } }))

let daemon

async function startDaemon() {
  const child = spawn(process.execPath, [BIN, 'daemon', 'run'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (output += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (output += d))
  const exited = new Promise((resolve) => child.on('exit', resolve))
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the daemon exited while starting:\n${output}`)
    try {
      const state = JSON.parse(readFileSync(join(walHome, 'daemon', 'daemon.json'), 'utf8'))
      // Writes carry the token the daemon generated, as a client on this machine reads it.
      if (state.pid === child.pid && (await fetch(`${state.url}/readyz`)).ok) {
        const token = readFileSync(join(walHome, 'daemon', 'token'), 'utf8').trim()
        return { child, url: state.url, exited, auth: { authorization: `Bearer ${token}` } }
      }
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`the daemon was not ready within 30 s:\n${output}`)
    await sleep(50)
  }
}

/** The daemon's CPU time so far (user + system, all its threads), in ms; NaN where /proc is not there. */
function daemonCpuMs() {
  try {
    const fields = readFileSync(`/proc/${daemon.child.pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN
  }
}

/** autocannon against the write endpoint; `body(i)` gives the i-th request's body. */
async function cannon(label, body, mutationsPerRequest) {
  let i = 0
  const cpuBefore = daemonCpuMs()
  const result = await autocannon({
    url: `${daemon.url}/v1/namespaces/${NAMESPACE}/mutations`,
    connections: CONNECTIONS,
    duration: DURATION_S,
    requests: [{ method: 'POST', headers: { 'content-type': 'application/json', ...daemon.auth }, setupRequest: (req) => ({ ...req, body: body(i++) }) }],
  })
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) throw new Error(`${label}: ${result.non2xx} non-2xx answers, ${result.errors} errors, ${result.timeouts} timeouts`)
  const cpuMs = daemonCpuMs() - cpuBefore
  const perSec = (result.requests.total * mutationsPerRequest) / (result.duration)
  const mutations = result.requests.total * mutationsPerRequest
  return { label, requests: result.requests.total, mutations, mutationsPerSec: Math.round(perSec), p50Ms: result.latency.p50, p99Ms: result.latency.p99, cpuUsPerMutation: round1((cpuMs * 1000) / mutations) }
}

const envelope = (i) => `{"key":"${keyFor(i)}","payload":${payloadFor(i)}}`

await runOrExit(
  async () => {
    daemon = await startDaemon()
    const rows = []
    let expected = 0
    // Warm up (JIT, the log's first pages), then measure.
    await cannon('warm-up', (i) => envelope(i), 1).then((r) => (expected += r.mutations))
    const single = await cannon('HTTP, 1 per request', (i) => envelope(i), 1)
    const batched = await cannon(`HTTP, ${BATCH} per request`, (i) => `[${Array.from({ length: BATCH }, (_, j) => envelope(i * BATCH + j)).join(',')}]`, BATCH)
    expected += single.mutations + batched.mutations
    rows.push(single, batched)
    // autocannon stops counting at the deadline, with up to one request per connection still in flight:
    // those are written too. Every ack must be in the log; the log may hold those few more.
    while ((await (await fetch(`${daemon.url}/v1/status`, { headers: daemon.auth })).json()).http.inFlight > 0) await sleep(20)
    const unanswered = countRecords(logPath) - expected
    if (unanswered < 0 || unanswered > 3 * CONNECTIONS * BATCH) throw new Error(`the log holds ${countRecords(logPath)} records, ${expected} were acked`)
    expected += unanswered

    const inputPath = join(work, 'input.ndjson')
    writeInput(inputPath, records)
    const stdin = await spawnTimed([BIN, 'produce', '-n', NAMESPACE], { cwd, env, inputFile: inputPath, stdout: 'ignore' })
    if (stdin.code !== 0) throw new Error(`wal produce exited ${stdin.code}:\n${stdin.stderr}`)
    expected += records
    rows.push({ label: `CLI stdin, ${records} lines`, requests: 1, mutations: records, mutationsPerSec: Math.round(records / (stdin.ms / 1000)), p50Ms: null, p99Ms: null, cpuUsPerMutation: round1((stdin.cpuMs * 1000) / records) })

    const singles = []
    for (let i = 0; i < CLI_SINGLE_SAMPLES; i++) {
      const started = performance.now()
      const one = await spawnTimed([BIN, 'produce', '-n', NAMESPACE, '-k', keyFor(i), '-p', payloadFor(i)], { cwd, env })
      if (one.code !== 0) throw new Error(`wal produce -p exited ${one.code}:\n${one.stderr}`)
      singles.push(performance.now() - started)
    }
    expected += CLI_SINGLE_SAMPLES
    singles.sort((a, b) => a - b)
    const total = singles.reduce((a, b) => a + b, 0)
    rows.push({ label: 'CLI -p, one process each', requests: CLI_SINGLE_SAMPLES, mutations: CLI_SINGLE_SAMPLES, mutationsPerSec: Math.round(CLI_SINGLE_SAMPLES / (total / 1000)), p50Ms: round1(percentile(singles, 50)), p99Ms: round1(percentile(singles, 99)) })
    if (countRecords(logPath) !== expected) throw new Error(`the log holds ${countRecords(logPath)} records, ${expected} were acked`)

    console.log(`durable produce into one embedded log (${CONNECTIONS} HTTP connections for ${DURATION_S} s; ~200-byte payloads)`)
    for (const r of rows) {
      const latency = r.p50Ms === null ? '' : `, durable write p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`
      const cpu = r.cpuUsPerMutation === undefined ? '' : `, wal's CPU ${r.cpuUsPerMutation} µs per mutation`
      console.log(`  ${r.label.padEnd(28)} ${fmt(r.mutationsPerSec).padStart(9)} mutations/s${latency}${cpu}`)
    }
    console.log(`  HTTP single vs CLI -p loop: ${round1(single.mutationsPerSec / rows[3].mutationsPerSec)}x; HTTP batched vs CLI stdin: ${round1(batched.mutationsPerSec / rows[2].mutationsPerSec)}x throughput, ${(rows[2].cpuUsPerMutation / batched.cpuUsPerMutation).toFixed(2)}x by CPU per mutation (the client, autocannon, runs on the same cores)`)
    console.log(JSON.stringify({ bench: 'http-produce', rows }))
  },
  async () => {
    if (daemon) {
      daemon.child.kill('SIGTERM')
      await daemon.exited
    }
    sandbox.cleanup()
  },
)
