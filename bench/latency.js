// End-to-end latency on an idle system: `wal produce` of one mutation → the item is in the kv target,
// with a `wal consume` running in the background (zero config: default namespace, kv target).
// Two figures per mutation, because a script pays for the produce's own start-up too:
// - from spawn: from just before `wal produce` is spawned until the item can be read in the kv store;
// - from ack: from the produce's exit (its ack: the mutation is durable) until the item can be read.
// Percentiles over the samples; no aim, it reports milliseconds.
//
//   npm run build && node bench/latency.js
//
// Exits 1 only when wal fails (a command exits non-zero, or an item never shows up).
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DatabaseSync } from 'node:sqlite'
import { setTimeout as sleep } from 'node:timers/promises'

import { BIN, benchSandbox, percentile, round1, runOrExit } from './lib.js'

const SAMPLES = 200
// A pause between mutations, so each one meets an idle consumer rather than a backlog.
const PAUSE_MS = 20
// How often the kv store is polled: well under the figures measured, so it adds little to them.
const POLL_MS = 2
const APPLY_TIMEOUT_MS = 10_000
const START_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 30_000
const TABLE = 'lat'

const sandbox = benchSandbox('latency')
const { cwd } = sandbox
const walHome = join(sandbox.work, 'wal-home')
const env = sandbox.env(walHome)
// Where the zero-config kv target keeps the default namespace's items, and how it spells a key.
const kvPath = join(walHome, 'kv', 'default.db')
const pkOf = (key) => JSON.stringify([['id', key]])

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b)
  // min only goes into the JSON: below 0 from ack means the item was readable before the producer had exited.
  return { min: round1(s[0]), p50: round1(percentile(s, 50)), p90: round1(percentile(s, 90)), p99: round1(percentile(s, 99)), max: round1(s[s.length - 1]) }
}
const show = (s) => `p50 ${s.p50} ms, p90 ${s.p90} ms, p99 ${s.p99} ms, max ${s.max} ms`

/** The background consumer; resolves once it owns its partitions (its `partitions` event on stderr). */
function startConsumer() {
  const child = spawn(process.execPath, [BIN, 'consume', '--json'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const consumer = { child, stdout: '', stderr: '', exited: null }
  child.stdout.setEncoding('utf8').on('data', (d) => (consumer.stdout += d))
  child.stderr.setEncoding('utf8')
  consumer.exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve((consumer.exited = code ?? signal))))
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wal consume did not report its partitions within ${START_TIMEOUT_MS} ms:\n${consumer.stderr}`)), START_TIMEOUT_MS)
    child.on('error', reject)
    child.stderr.on('data', (d) => {
      consumer.stderr += d
      for (const line of consumer.stderr.split('\n')) {
        try {
          if (JSON.parse(line).event === 'partitions') {
            clearTimeout(timer)
            resolve()
          }
        } catch {
          // Not a whole JSON line (yet).
        }
      }
    })
    consumer.exit.then((code) => {
      clearTimeout(timer)
      reject(new Error(`wal consume exited ${code} before it started:\n${consumer.stderr}`))
    })
  })
  return { consumer, ready }
}

/** One sample: spawn `wal produce`, and poll the kv store from t0 until the item is there. */
async function sample(i, lookup) {
  const key = `key${i}`
  const payload = JSON.stringify({ op: 'put', table: TABLE, key: { id: key }, item: { id: key, i } })
  const pk = pkOf(key)
  let stderr = ''
  let ackAt
  let code
  const t0 = performance.now()
  const child = spawn(process.execPath, [BIN, 'produce', '-k', key, '-p', payload], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const exited = new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (c, signal) => {
      ackAt = performance.now()
      code = c ?? signal
      resolve()
    })
  })
  // Polled alongside the produce: the consumer may apply the mutation before the producer has exited.
  let appliedAt
  while (appliedAt === undefined) {
    if (lookup.get(TABLE, pk) !== undefined) appliedAt = performance.now()
    else if (code !== undefined && code !== 0) break
    else if (performance.now() - t0 > APPLY_TIMEOUT_MS) {
      await exited
      throw new Error(`${key} not applied within ${APPLY_TIMEOUT_MS} ms (produce exited ${code}${stderr ? `: ${stderr.trim()}` : ''})`)
    } else await sleep(POLL_MS)
  }
  await exited
  if (code !== 0) throw new Error(`wal produce of ${key} exited ${code}:\n${stderr}`)
  return { fromSpawn: appliedAt - t0, fromAck: appliedAt - ackAt, produce: ackAt - t0 }
}

const fromSpawn = []
const fromAck = []
const produceMs = []
let consumer
let db
await runOrExit(async () => {
  const started = startConsumer()
  consumer = started.consumer
  await started.ready
  // The consumer has opened (and created) the kv store by the time it owns partitions.
  db = new DatabaseSync(kvPath, { readOnly: true })
  const lookup = db.prepare('SELECT 1 FROM items WHERE tbl = ? AND pk = ?')
  for (let i = 0; i < SAMPLES; i++) {
    const s = await sample(i, lookup)
    fromSpawn.push(s.fromSpawn)
    fromAck.push(s.fromAck)
    produceMs.push(s.produce)
    await sleep(PAUSE_MS)
  }
  const count = db.prepare('SELECT count(*) AS n FROM items WHERE tbl = ?').get(TABLE).n
  if (count !== SAMPLES) throw new Error(`the kv store holds ${count} items, not ${SAMPLES}`)

  // A graceful stop: SIGTERM drains, commits and exits 0 with its summary.
  consumer.child.kill('SIGTERM')
  const timer = setTimeout(() => consumer.child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  const code = await consumer.exit
  clearTimeout(timer)
  if (code !== 0) throw new Error(`wal consume exited ${code} on SIGTERM:\n${consumer.stderr}`)
  const summary = JSON.parse(consumer.stdout)
  const kv = summary.targets[0]
  if (kv.applied !== SAMPLES || kv.lag !== 0) throw new Error(`wal consume's summary says applied ${kv.applied}, lag ${kv.lag} (want ${SAMPLES}, 0)`)
}, async () => {
  db?.close()
  // Never leave the consumer behind, whatever failed.
  if (consumer && consumer.exited === null) {
    consumer.child.kill('SIGKILL')
    await consumer.exit
  }
  sandbox.cleanup()
})

const spawnStats = stats(fromSpawn)
const ackStats = stats(fromAck)
const produceStats = stats(produceMs)
console.log(`produce (spawn -> ack)  ${show(produceStats)}`)
console.log(`applied, from spawn     ${show(spawnStats)}`)
console.log(`applied, from ack       ${show(ackStats)}`)
console.log(
  `latency produce -> kv applied (${SAMPLES} samples, idle): from spawn p50 ${spawnStats.p50} ms, p99 ${spawnStats.p99} ms; from ack p50 ${ackStats.p50} ms, p99 ${ackStats.p99} ms`,
)
console.log(
  JSON.stringify({
    bench: 'latency',
    samples: SAMPLES,
    pauseMs: PAUSE_MS,
    pollMs: POLL_MS,
    fromSpawnMs: spawnStats,
    fromAckMs: ackStats,
    produceMs: produceStats,
    node: process.version,
  }),
)
