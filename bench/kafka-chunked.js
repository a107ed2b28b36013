// Chunked payloads on Kafka: `wal produce --payload-file` of one large JSON payload (10 MiB by default)
// into a Kafka namespace whose topic keeps the broker's default max.message.bytes (1 MiB), so wal writes
// it as chunks, against a raw kafkajs send of the same bytes cut into records of the same size (idempotent,
// acks=all, one request per record as wal sends them), alternating runs. Both are timed from spawn to
// exit. Needs the test broker (`npm run services -- up`).
//
//   npm run build && node bench/kafka-chunked.js [--mib N]
//
// Reports MiB/s of both and the ratio; does not gate. Exits 1 when wal fails.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Kafka, logLevel } from 'kafkajs'

import { endpoints } from '../scripts/services/endpoints.js'
import { BIN, benchSandbox, median, runOrExit, spawnTimed, writeLargePayload } from './lib.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
// What wal's chunks hold under a 1 MiB topic limit (batchBudget: 512 KiB, less the record's key and headers).
const CHUNK_BYTES = 512 * 1024 - 1024
const { values } = parseArgs({ options: { mib: { type: 'string', default: '10' } } })
const mib = Number(values.mib)
const sandbox = benchSandbox('kafka-chunked')
const { work, cwd } = sandbox
const brokers = endpoints.kafka.brokers
const kafka = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING })
const admin = kafka.admin()
const topics = []

const { path: payloadPath } = writeLargePayload(work, mib)

// The raw side, run as its own process so it pays the same Node start-up as `wal produce`.
const RAW = join(work, 'raw.mjs')
writeFileSync(
  RAW,
  `import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
const { Kafka, logLevel } = createRequire(${JSON.stringify(join(process.cwd(), 'package.json'))})('kafkajs')
const [brokers, topic, path, chunk] = process.argv.slice(2)
const value = readFileSync(path)
const producer = new Kafka({ clientId: 'raw', brokers: brokers.split(','), logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1 })
await producer.connect()
for (let at = 0; at < value.length; at += Number(chunk)) await producer.send({ topic, acks: -1, messages: [{ key: 'big', value: value.subarray(at, at + Number(chunk)), partition: 0 }] })
await producer.disconnect()
`,
)

async function runWal(run) {
  const topic = `bench-chunk-wal-${process.pid}-${run}`
  topics.push(topic, `${topic}.dlq`, `${topic}.wal-schedule`, `${topic}.wal-history`, `${topic}.wal-state`)
  writeFileSync(join(cwd, '.walrc.json'), JSON.stringify({ clusters: { kafka: { bench: { brokers } } }, namespaces: { bench: { backend: 'kafka', cluster: 'bench', topic, partitions: 1, maxPayloadBytes: 64 * 1024 * 1024 } } }))
  const env = sandbox.env(join(work, `wal-${run}`))
  const init = await spawnTimed([BIN, 'ns', 'init', 'bench'], { cwd, env })
  if (init.code !== 0) throw new Error(`wal ns init exited ${init.code}:\n${init.stderr}`)
  const { code, stderr, ms } = await spawnTimed([BIN, 'produce', '-n', 'bench', '-k', 'big', '--payload-file', payloadPath], { cwd, env })
  if (code !== 0) throw new Error(`wal produce exited ${code}:\n${stderr}`)
  return ms
}

async function runRaw(run) {
  const topic = `bench-chunk-raw-${process.pid}-${run}`
  topics.push(topic)
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] })
  const { code, stderr, ms } = await spawnTimed([RAW, brokers.join(','), topic, payloadPath, String(CHUNK_BYTES)], { cwd, env: process.env })
  if (code !== 0) throw new Error(`raw producer exited ${code}:\n${stderr}`)
  return ms
}

await runOrExit(
  async () => {
    await admin.connect()
    const walMs = []
    const rawMs = []
    for (let run = 0; run < RUNS; run++) {
      walMs.push(await runWal(run))
      rawMs.push(await runRaw(run))
    }
    const wal = (mib / median(walMs)) * 1000
    const raw = (mib / median(rawMs)) * 1000
    console.log(`kafka chunked produce of one ${mib} MiB payload (1 MiB topic limit, acks=all, median of ${RUNS}): wal ${wal.toFixed(1)} MiB/s; raw kafkajs send of the same bytes in ${CHUNK_BYTES}-byte records ${raw.toFixed(1)} MiB/s (ratio ${(wal / raw).toFixed(2)}x)`)
    console.log(JSON.stringify({ bench: 'kafka-chunked', mib, runs: RUNS, walMs: walMs.map(Math.round), rawMs: rawMs.map(Math.round) }))
  },
  async () => {
    await admin.deleteTopics({ topics }).catch(() => undefined)
    await admin.disconnect()
    sandbox.cleanup()
  },
)
