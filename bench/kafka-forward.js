// Consume → Kafka target (cross-region replication) throughput: `wal consume --until-idle` of a Kafka
// namespace holding N records into a Kafka target topic, against bench/raw-kafka-forward.js — a kafkajs
// consume-and-forward loop with batch sends and commits — over the same records, alternating runs. Both
// sides include joining their consumer group. Needs the test broker (`npm run services -- up`).
//
//   npm run build && node bench/kafka-forward.js [--records N]
//
// Reports the ratios of wall time and of CPU time; does not gate on them. Exits 1 when wal fails or a record is missing.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Kafka, logLevel } from 'kafkajs'

import { endpoints } from '../scripts/services/endpoints.js'
import { BIN, ROOT, benchSandbox, countLabel, fmt, median, recordsOption, runOrExit, spawnTimed, throughput, writeInput } from './lib.js'

const PARTITIONS = 8
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const AIM = 0.9
// Keys applied at once: per-key order holds at any concurrency, and a Kafka target batches what is
// in flight into one send.
const CONCURRENCY = 1000

const records = recordsOption(100_000)
const sandbox = benchSandbox('kafka-forward')
const { work, cwd } = sandbox
const brokers = endpoints.kafka.brokers
const kafka = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING })
const admin = kafka.admin()
const source = `bench-forward-src-${process.pid}`
const topics = [source, `${source}.dlq`, `${source}.wal-schedule`, `${source}.wal-history`, `${source}.wal-state`]

const inputPath = join(work, 'input.ndjson')
const { meanPayload } = writeInput(inputPath, records)
const env = sandbox.env(join(work, 'wal'))

async function highSum(topic) {
  return (await admin.fetchTopicOffsets(topic)).reduce((n, o) => n + Number(o.high), 0)
}

function configure(targetTopic) {
  writeFileSync(
    join(cwd, '.walrc.json'),
    JSON.stringify({
      clusters: { kafka: { bench: { brokers } } },
      namespaces: { bench: { backend: 'kafka', cluster: 'bench', topic: source, partitions: PARTITIONS, targets: { replica: { type: 'kafka', cluster: 'bench', topic: targetTopic } } } },
    }),
  )
}

async function runWal(run) {
  const target = `bench-forward-wal-${process.pid}-${run}`
  topics.push(target)
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: target, numPartitions: PARTITIONS, replicationFactor: 1 }] })
  configure(target)
  // A fresh consumer group per run (wal's group is wal.<topic>.<target>), so each run starts at offset 0.
  await admin.deleteGroups([`wal.${source}.replica`]).catch(() => undefined)
  const { code, stderr, ms, cpuMs } = await spawnTimed([BIN, 'consume', '-n', 'bench', '--until-idle', '--concurrency', String(CONCURRENCY)], { cwd, env })
  if (code !== 0) throw new Error(`wal consume exited ${code}:\n${stderr}`)
  const count = await highSum(target)
  if (count !== records) throw new Error(`wal forwarded ${count} records, not ${records}`)
  return { ms, cpuMs }
}

async function runRaw(run) {
  const target = `bench-forward-raw-${process.pid}-${run}`
  topics.push(target)
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: target, numPartitions: PARTITIONS, replicationFactor: 1 }] })
  const { code, stderr, ms, cpuMs } = await spawnTimed([join(ROOT, 'bench', 'raw-kafka-forward.js'), brokers.join(','), source, target, String(records)], { cwd, env: process.env })
  if (code !== 0) throw new Error(`raw forwarder exited ${code}:\n${stderr}`)
  const count = await highSum(target)
  if (count !== records) throw new Error(`the raw forwarder wrote ${count} records, not ${records}`)
  return { ms, cpuMs }
}

await runOrExit(
  async () => {
    await admin.connect()
    configure('unused')
    const init = await spawnTimed([BIN, 'ns', 'init', 'bench'], { cwd, env })
    if (init.code !== 0) throw new Error(`wal ns init exited ${init.code}:\n${init.stderr}`)
    const produced = await spawnTimed([BIN, 'produce', '-n', 'bench'], { cwd, env, inputFile: inputPath, stdout: 'ignore' })
    if (produced.code !== 0) throw new Error(`wal produce exited ${produced.code}:\n${produced.stderr}`)
    const walRuns = []
    const rawRuns = []
    for (let run = 0; run < RUNS; run++) {
      walRuns.push(await runWal(run))
      rawRuns.push(await runRaw(run))
      console.log(`run ${run + 1}/${RUNS}: wal ${walRuns[run].ms.toFixed(0)} ms (CPU ${walRuns[run].cpuMs.toFixed(0)} ms), raw kafkajs ${rawRuns[run].ms.toFixed(0)} ms (CPU ${rawRuns[run].cpuMs.toFixed(0)} ms)`)
    }
    const walMs = walRuns.map((r) => r.ms)
    const rawMs = rawRuns.map((r) => r.ms)
    const wal = throughput(records, walMs)
    const raw = throughput(records, rawMs)
    const ratio = wal.perSec / raw.perSec
    const walCpu = median(walRuns.map((r) => r.cpuMs))
    const rawCpu = median(rawRuns.map((r) => r.cpuMs))
    const cpuRatio = rawCpu / walCpu
    console.log(`kafka forward ${countLabel(records)} x ~${meanPayload}B: wal consume ${fmt(wal.perSec)}/s; raw kafkajs consume-and-forward ${fmt(raw.perSec)}/s (wall ratio ${ratio.toFixed(2)}x, CPU ${fmt(walCpu)} vs ${fmt(rawCpu)} ms: CPU ratio ${cpuRatio.toFixed(2)}x, aim >= ${AIM}x)`)
    console.log(JSON.stringify({ bench: 'kafka-forward', records, payloadBytes: meanPayload, concurrency: CONCURRENCY, runs: RUNS, walMs: walMs.map(Math.round), rawMs: rawMs.map(Math.round), walPerSec: Math.round(wal.perSec), rawPerSec: Math.round(raw.perSec), ratio: Number(ratio.toFixed(3)), walCpuMs: walRuns.map((r) => Math.round(r.cpuMs)), rawCpuMs: rawRuns.map((r) => Math.round(r.cpuMs)), cpuRatio: Number(cpuRatio.toFixed(3)) }))
  },
  async () => {
    await admin.deleteGroups([`wal.${source}.replica`]).catch(() => undefined)
    await admin.deleteTopics({ topics }).catch(() => undefined)
    await admin.disconnect().catch(() => undefined)
    sandbox.cleanup()
  },
)
