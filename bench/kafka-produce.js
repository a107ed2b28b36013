// Durable produce throughput on Kafka: `wal produce` into a Kafka namespace, fed NDJSON on stdin, against
// bench/raw-kafka-produce.js — a kafkajs sendBatch loop with the same batch size, idempotent, acks=all —
// into a topic of the same partitions, alternating runs so machine noise hits both alike. Needs the test
// broker (`npm run services -- up`, or WAL_TEST_KAFKA_BROKERS).
//
//   npm run build && node bench/kafka-produce.js [--records N]
//
// Reports the ratio; does not gate on it. Exits 1 when wal fails or the topic misses records.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Kafka, logLevel } from 'kafkajs'

import { endpoints } from '../scripts/services/endpoints.js'
import { BIN, ROOT, benchSandbox, countLabel, fmt, recordsOption, runOrExit, spawnTimed, throughput, writeInput } from './lib.js'

// Mirrors MAX_BATCH_RECORDS in src/lib/produce/produce.ts.
const BATCH_RECORDS = 1000
const PARTITIONS = 8
const RUNS = 3
const AIM = 0.9

const records = recordsOption(100_000)
const sandbox = benchSandbox('kafka-produce')
const { work, cwd } = sandbox
const brokers = endpoints.kafka.brokers
const kafka = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING })
const admin = kafka.admin()
const topics = []

const inputPath = join(work, 'input.ndjson')
const { meanPayload } = writeInput(inputPath, records)

async function highSum(topic) {
  const offsets = await admin.fetchTopicOffsets(topic)
  return offsets.reduce((n, o) => n + Number(o.high), 0)
}

async function runWal(run) {
  const topic = `bench-wal-${process.pid}-${run}`
  topics.push(topic, `${topic}.dlq`, `${topic}.wal-schedule`, `${topic}.wal-history`, `${topic}.wal-state`)
  writeFileSync(
    join(cwd, '.walrc.json'),
    JSON.stringify({ clusters: { kafka: { bench: { brokers } } }, namespaces: { bench: { backend: 'kafka', cluster: 'bench', topic, partitions: PARTITIONS } } }),
  )
  const env = sandbox.env(join(work, `wal-${run}`))
  const init = await spawnTimed([BIN, 'ns', 'init', 'bench'], { cwd, env })
  if (init.code !== 0) throw new Error(`wal ns init exited ${init.code}:\n${init.stderr}`)
  const { code, stderr, ms } = await spawnTimed([BIN, 'produce', '-n', 'bench'], { cwd, env, inputFile: inputPath, stdout: 'ignore' })
  if (code !== 0) throw new Error(`wal produce exited ${code}:\n${stderr}`)
  const count = await highSum(topic)
  if (count !== records) throw new Error(`wal produce exited 0 but the topic holds ${count} records, not ${records}`)
  return ms
}

async function runRaw(run) {
  const topic = `bench-raw-${process.pid}-${run}`
  topics.push(topic)
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] })
  const { code, stderr, ms } = await spawnTimed([join(ROOT, 'bench', 'raw-kafka-produce.js'), brokers.join(','), topic, String(BATCH_RECORDS)], { cwd, env: process.env, inputFile: inputPath })
  if (code !== 0) throw new Error(`raw producer exited ${code}:\n${stderr}`)
  const count = await highSum(topic)
  if (count !== records) throw new Error(`the raw producer's topic holds ${count} records, not ${records}`)
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
      console.log(`run ${run + 1}/${RUNS}: wal ${walMs[run].toFixed(0)} ms, raw kafkajs ${rawMs[run].toFixed(0)} ms`)
    }
    const wal = throughput(records, walMs)
    const raw = throughput(records, rawMs)
    const ratio = wal.perSec / raw.perSec
    console.log(`kafka produce ${countLabel(records)} x ~${meanPayload}B acks=all: wal ${fmt(wal.perSec)}/s; raw kafkajs sendBatch ${fmt(raw.perSec)}/s (ratio ${ratio.toFixed(2)}x, aim >= ${AIM}x)`)
    console.log(JSON.stringify({ bench: 'kafka-produce', records, payloadBytes: meanPayload, batchRecords: BATCH_RECORDS, runs: RUNS, walMs: walMs.map(Math.round), rawMs: rawMs.map(Math.round), walPerSec: Math.round(wal.perSec), rawPerSec: Math.round(raw.perSec), ratio: Number(ratio.toFixed(3)) }))
  },
  async () => {
    await admin.deleteTopics({ topics }).catch(() => undefined)
    await admin.disconnect().catch(() => undefined)
    sandbox.cleanup()
  },
)
