// Consume → Cassandra throughput: `wal consume --until-idle` of an embedded namespace holding N puts into
// a Cassandra target, against bench/raw-cassandra-apply.js — cassandra-driver's executeConcurrent with
// the same prepared statement and the same concurrency — over the same rows, alternating runs, each
// into a fresh keyspace. Both sides include starting node, connecting and preparing; wal also reads its
// log, keeps per-key order and commits offsets. Needs the test Cassandra (`npm run services -- up`).
//
//   npm run build && node bench/cassandra-apply.js [--records N]
//
// Reports the ratios of wall time and of CPU time; does not gate on them. Exits 1 when wal fails or a row is missing.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import cassandra from 'cassandra-driver'

import { endpoints } from '../scripts/services/endpoints.js'
import { BIN, ROOT, benchSandbox, countLabel, fmt, median, keyFor, recordsOption, runOrExit, spawnTimed, throughput } from './lib.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const AIM = 0.85
// The Cassandra target's default concurrency (DEFAULTS.cassandra.concurrency), for both sides.
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64)

const records = recordsOption(100_000)
const sandbox = benchSandbox('cassandra-apply')
const { work, cwd } = sandbox
const contactPoint = endpoints.cassandra.contactPoints[0]
const dc = endpoints.cassandra.localDataCenter
const client = new cassandra.Client({ contactPoints: [contactPoint], localDataCenter: dc, socketOptions: { readTimeout: 120_000 } })
const keyspaces = []

/** ~200-byte puts of one row each (the same rows for both sides). */
function writePuts(path, count) {
  let ndjson = ''
  let bytes = 0
  for (let i = 0; i < count; i++) {
    const payload = { op: 'put', table: 'orders', key: { id: i }, item: { user: keyFor(i), sku: `SKU-${(i * 7919) % 100000}`, qty: (i % 9) + 1, cents: (i * 131) % 100000, note: '' } }
    payload.item.note = 'x'.repeat(Math.max(0, 200 - JSON.stringify(payload).length))
    const text = JSON.stringify(payload)
    bytes += text.length
    ndjson += `{"key":"${keyFor(i)}","payload":${text}}\n`
  }
  writeFileSync(path, ndjson)
  return Math.round(bytes / count)
}

async function freshKeyspace(name) {
  const keyspace = `bench_${name}_${process.pid}`
  keyspaces.push(keyspace)
  await client.execute(`CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`)
  await client.execute(`CREATE TABLE ${keyspace}.orders (id int PRIMARY KEY, user text, sku text, qty int, cents int, note text)`)
  return keyspace
}

async function rowCount(keyspace) {
  return Number((await client.execute(`SELECT count(*) AS n FROM ${keyspace}.orders`)).first().get('n'))
}

const inputPath = join(work, 'input.ndjson')
const meanPayload = writePuts(inputPath, records)
const env = sandbox.env(join(work, 'wal'))

function configure(keyspace) {
  // A new target name per run: its own offsets, so each run applies the whole log again.
  writeFileSync(
    join(cwd, '.walrc.json'),
    JSON.stringify({
      clusters: { cassandra: { bench: { contactPoints: [contactPoint], localDataCenter: dc } } },
      namespaces: { bench: { targets: { [keyspace]: { type: 'cassandra', cluster: 'bench', keyspace, concurrency: CONCURRENCY } } } },
    }),
  )
}

async function runWal(run) {
  const keyspace = await freshKeyspace(`wal${run}`)
  configure(keyspace)
  const { code, stderr, ms, cpuMs } = await spawnTimed([BIN, 'consume', '-n', 'bench', '--until-idle'], { cwd, env })
  if (code !== 0) throw new Error(`wal consume exited ${code}:\n${stderr}`)
  const count = await rowCount(keyspace)
  if (count !== records) throw new Error(`wal applied ${count} rows, not ${records}`)
  return { ms, cpuMs }
}

async function runRaw(run) {
  const keyspace = await freshKeyspace(`raw${run}`)
  const { code, stderr, ms, cpuMs } = await spawnTimed([join(ROOT, 'bench', 'raw-cassandra-apply.js'), contactPoint, dc, keyspace, inputPath, String(CONCURRENCY)], { cwd, env: process.env })
  if (code !== 0) throw new Error(`raw loop exited ${code}:\n${stderr}`)
  const count = await rowCount(keyspace)
  if (count !== records) throw new Error(`the raw loop wrote ${count} rows, not ${records}`)
  return { ms, cpuMs }
}

await runOrExit(
  async () => {
    await client.connect()
    configure('unused')
    const produced = await spawnTimed([BIN, 'produce', '-n', 'bench'], { cwd, env, inputFile: inputPath, stdout: 'ignore' })
    if (produced.code !== 0) throw new Error(`wal produce exited ${produced.code}:\n${produced.stderr}`)
    const walRuns = []
    const rawRuns = []
    for (let run = 0; run < RUNS; run++) {
      walRuns.push(await runWal(run))
      rawRuns.push(await runRaw(run))
      console.log(`run ${run + 1}/${RUNS}: wal ${walRuns[run].ms.toFixed(0)} ms (CPU ${walRuns[run].cpuMs.toFixed(0)} ms), raw cassandra-driver ${rawRuns[run].ms.toFixed(0)} ms (CPU ${rawRuns[run].cpuMs.toFixed(0)} ms)`)
    }
    const walMs = walRuns.map((r) => r.ms)
    const rawMs = rawRuns.map((r) => r.ms)
    const wal = throughput(records, walMs)
    const raw = throughput(records, rawMs)
    const ratio = wal.perSec / raw.perSec
    const walCpu = median(walRuns.map((r) => r.cpuMs))
    const rawCpu = median(rawRuns.map((r) => r.cpuMs))
    const cpuRatio = rawCpu / walCpu
    console.log(
      `cassandra apply ${countLabel(records)} puts x ~${meanPayload}B, concurrency ${CONCURRENCY}: wal consume ${fmt(wal.perSec)}/s; raw executeConcurrent ${fmt(raw.perSec)}/s (wall ratio ${ratio.toFixed(2)}x, CPU ${fmt(walCpu)} vs ${fmt(rawCpu)} ms: CPU ratio ${cpuRatio.toFixed(2)}x, aim >= ${AIM}x)`,
    )
    console.log(
      JSON.stringify({ bench: 'cassandra-apply', records, payloadBytes: meanPayload, concurrency: CONCURRENCY, runs: RUNS, walMs: walMs.map(Math.round), rawMs: rawMs.map(Math.round), walPerSec: Math.round(wal.perSec), rawPerSec: Math.round(raw.perSec), ratio: Number(ratio.toFixed(3)), walCpuMs: walRuns.map((r) => Math.round(r.cpuMs)), rawCpuMs: rawRuns.map((r) => Math.round(r.cpuMs)), cpuRatio: Number(cpuRatio.toFixed(3)) }),
    )
  },
  async () => {
    for (const keyspace of keyspaces) await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined)
    await client.shutdown().catch(() => undefined)
    sandbox.cleanup()
  },
)
