// Durable produce throughput on Kafka: `wal produce` into a Kafka namespace, fed NDJSON on stdin, against
// bench/raw-kafka-produce.js — a kafkajs sendBatch loop with the same batch size, idempotent, acks=all —
// into a topic of the same partitions, alternating runs so machine noise hits both alike. When kcat is on
// the PATH, a third side sends the same keys and payloads with librdkafka (kcat -P: idempotent, acks=all,
// batches of the same size, no compression), to show how far kafkajs itself is from librdkafka. Needs the
// test broker (`npm run services -- up`, or WAL_TEST_KAFKA_BROKERS).
//
//   npm run build && node bench/kafka-produce.js [--records N]
//
// Reports the ratios of wall time and of CPU time; does not gate on them. Exits 1 when wal fails or the topic misses records.
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Kafka, logLevel } from 'kafkajs'

import { endpoints } from '../scripts/services/endpoints.js'
import { BIN, ROOT, benchSandbox, countLabel, fmt, median, recordsOption, runOrExit, spawnTimed, throughput, writeInput } from './lib.js'

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
const { keys, payloads, meanPayload } = writeInput(inputPath, records)
// kcat's input: the same keys and payloads, one `key<TAB>payload` line each.
const kcatInputPath = join(work, 'input.tsv')
writeFileSync(kcatInputPath, keys.map((k, i) => `${k}\t${payloads[i]}\n`).join(''))
const hasKcat = spawnSync('kcat', ['-V'], { stdio: 'ignore' }).status === 0

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
  const { code, stderr, ms, cpuMs } = await spawnTimed([BIN, 'produce', '-n', 'bench'], { cwd, env, inputFile: inputPath, stdout: 'ignore' })
  if (code !== 0) throw new Error(`wal produce exited ${code}:\n${stderr}`)
  const count = await highSum(topic)
  if (count !== records) throw new Error(`wal produce exited 0 but the topic holds ${count} records, not ${records}`)
  return { ms, cpuMs }
}

async function runRaw(run) {
  const topic = `bench-raw-${process.pid}-${run}`
  topics.push(topic)
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] })
  const { code, stderr, ms, cpuMs } = await spawnTimed([join(ROOT, 'bench', 'raw-kafka-produce.js'), brokers.join(','), topic, String(BATCH_RECORDS)], { cwd, env: process.env, inputFile: inputPath })
  if (code !== 0) throw new Error(`raw producer exited ${code}:\n${stderr}`)
  const count = await highSum(topic)
  if (count !== records) throw new Error(`the raw producer's topic holds ${count} records, not ${records}`)
  return { ms, cpuMs }
}

/** kcat (librdkafka) sending the same lines; its CPU time from the shell's `times` (the child's user + system). */
async function runKcat(run) {
  const topic = `bench-kcat-${process.pid}-${run}`
  topics.push(topic)
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] })
  const kcat = `kcat -P -b '${brokers.join(',')}' -t '${topic}' -K '\\t' -X enable.idempotence=true -X acks=all -X batch.num.messages=${BATCH_RECORDS} -X compression.codec=none -l '${kcatInputPath}'`
  const started = performance.now()
  let ms = 0
  const { code, out } = await new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `${kcat}; s=$?; times; exit $s`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('exit', () => (ms = performance.now() - started))
    child.on('close', (c) => resolve({ code: c, out }))
  })
  if (code !== 0) throw new Error(`kcat exited ${code}:\n${out}`)
  const count = await highSum(topic)
  if (count !== records) throw new Error(`kcat's topic holds ${count} records, not ${records}`)
  // `times` prints the shell's own times, then its children's: "0m1.230000s 0m0.450000s".
  const children = out.trim().split('\n').at(-1).match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/)
  const cpuMs = children ? (Number(children[1]) * 60 + Number(children[2]) + Number(children[3]) * 60 + Number(children[4])) * 1000 : Number.NaN
  return { ms, cpuMs }
}

await runOrExit(
  async () => {
    await admin.connect()
    const walRuns = []
    const rawRuns = []
    const kcatRuns = []
    for (let run = 0; run < RUNS; run++) {
      walRuns.push(await runWal(run))
      rawRuns.push(await runRaw(run))
      if (hasKcat) kcatRuns.push(await runKcat(run))
      const kcatText = hasKcat ? `, kcat ${kcatRuns[run].ms.toFixed(0)} ms (CPU ${kcatRuns[run].cpuMs.toFixed(0)} ms)` : ''
      console.log(`run ${run + 1}/${RUNS}: wal ${walRuns[run].ms.toFixed(0)} ms (CPU ${walRuns[run].cpuMs.toFixed(0)} ms), raw kafkajs ${rawRuns[run].ms.toFixed(0)} ms (CPU ${rawRuns[run].cpuMs.toFixed(0)} ms)${kcatText}`)
    }
    const wal = throughput(records, walRuns.map((r) => r.ms))
    const raw = throughput(records, rawRuns.map((r) => r.ms))
    const ratio = wal.perSec / raw.perSec
    const walCpu = median(walRuns.map((r) => r.cpuMs))
    const rawCpu = median(rawRuns.map((r) => r.cpuMs))
    const cpuRatio = rawCpu / walCpu
    console.log(
      `kafka produce ${countLabel(records)} x ~${meanPayload}B acks=all: wal ${fmt(wal.perSec)}/s, CPU ${fmt(walCpu)} ms; raw kafkajs sendBatch ${fmt(raw.perSec)}/s, CPU ${fmt(rawCpu)} ms (wall ratio ${ratio.toFixed(2)}x, CPU ratio ${cpuRatio.toFixed(2)}x, aim >= ${AIM}x)`,
    )
    const kcat = hasKcat ? { ...throughput(records, kcatRuns.map((r) => r.ms)), cpuMs: median(kcatRuns.map((r) => r.cpuMs)) } : undefined
    if (kcat) console.log(`kcat (librdkafka) on the same lines: ${fmt(kcat.perSec)}/s, CPU ${fmt(kcat.cpuMs)} ms — raw kafkajs is ${(raw.perSec / kcat.perSec).toFixed(2)}x its throughput and uses ${(rawCpu / kcat.cpuMs).toFixed(1)}x its CPU`)
    else console.log('kcat not found on the PATH: no librdkafka comparison')
    console.log(
      JSON.stringify({
        bench: 'kafka-produce',
        records,
        payloadBytes: meanPayload,
        batchRecords: BATCH_RECORDS,
        runs: RUNS,
        walMs: walRuns.map((r) => Math.round(r.ms)),
        rawMs: rawRuns.map((r) => Math.round(r.ms)),
        walCpuMs: walRuns.map((r) => Math.round(r.cpuMs)),
        rawCpuMs: rawRuns.map((r) => Math.round(r.cpuMs)),
        walPerSec: Math.round(wal.perSec),
        rawPerSec: Math.round(raw.perSec),
        ratio: Number(ratio.toFixed(3)),
        cpuRatio: Number(cpuRatio.toFixed(3)),
        ...(kcat ? { kcatMs: kcatRuns.map((r) => Math.round(r.ms)), kcatCpuMs: kcatRuns.map((r) => Math.round(r.cpuMs)), kcatPerSec: Math.round(kcat.perSec) } : {}),
      }),
    )
  },
  async () => {
    await admin.deleteTopics({ topics }).catch(() => undefined)
    await admin.disconnect().catch(() => undefined)
    sandbox.cleanup()
  },
)
