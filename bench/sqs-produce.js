// Durable produce throughput on SQS: `wal produce` into an SQS namespace, fed NDJSON on stdin, against
// bench/raw-sqs-produce.js — a SendMessageBatch loop (10 a request, 16 in flight) — into a queue of its
// own, alternating runs. Both go through a counting HTTP proxy in front of the test ElasticMQ, so the API
// calls each makes per 1,000 messages are counted, not estimated. Needs the test ElasticMQ
// (`npm run services -- up`, or WAL_TEST_SQS_ENDPOINT).
//
//   npm run build && node bench/sqs-produce.js [--records N]
//
// Also runs `wal produce` into a FIFO namespace with the same lines spread over 1,000 keys (message
// groups), whose sends are ordered per group: its throughput is reported against the standard queue's.
//
// Reports the ratio and calls per 1,000; does not gate on them. Exits 1 when wal fails or a queue misses
// messages.
import { writeFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import { join } from 'node:path'
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs'

import { endpoints } from '../scripts/services/endpoints.js'
import { BIN, ROOT, benchSandbox, countLabel, fmt, payloadFor, recordsOption, runOrExit, spawnTimed, throughput, writeInput } from './lib.js'

const RUNS = 3
const AIM = 0.9
const AIM_CALLS = 105

const records = recordsOption(20_000)
const sandbox = benchSandbox('sqs-produce')
const { work, cwd } = sandbox
const upstream = new URL(endpoints.sqs.endpoint)
const sqs = new SQSClient({ endpoint: endpoints.sqs.endpoint, region: endpoints.sqs.region, credentials: { ...endpoints.sqs.credentials } })
const queues = []

const inputPath = join(work, 'input.ndjson')
const { meanPayload } = writeInput(inputPath, records)
const FIFO_KEYS = 1000
const fifoInputPath = join(work, 'input-fifo.ndjson')
writeFileSync(fifoInputPath, Array.from({ length: records }, (_, i) => `{"key":"user-${i % FIFO_KEYS}","payload":${payloadFor(i)}}\n`).join(''))

// The counting proxy: every SQS API call passes here; calls are counted by their X-Amz-Target.
let calls = new Map()
const proxy = createServer((req, res) => {
  const action = String(req.headers['x-amz-target'] ?? 'unknown').replace('AmazonSQS.', '')
  calls.set(action, (calls.get(action) ?? 0) + 1)
  const forward = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers)
    answer.pipe(res)
  })
  forward.on('error', () => res.destroy())
  req.pipe(forward)
})
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
const proxyEndpoint = `http://127.0.0.1:${proxy.address().port}`

async function count(queueUrl) {
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }))
  return Number(Attributes.ApproximateNumberOfMessages)
}

const totalCalls = () => [...calls.values()].reduce((a, b) => a + b, 0)

async function runWal(run, { fifo = false } = {}) {
  const queue = `bench-wal-${process.pid}-${run}${fifo ? '-f' : ''}`
  writeFileSync(
    join(cwd, '.walrc.json'),
    JSON.stringify({
      clusters: { sqs: { bench: { region: endpoints.sqs.region, endpoint: proxyEndpoint, ...endpoints.sqs.credentials } } },
      namespaces: { bench: { backend: 'sqs', cluster: 'bench', queue, fifo } },
    }),
  )
  const env = sandbox.env(join(work, `wal-${run}${fifo ? '-f' : ''}`))
  const init = await spawnTimed([BIN, 'ns', 'init', 'bench'], { cwd, env })
  if (init.code !== 0) throw new Error(`wal ns init exited ${init.code}:\n${init.stderr}`)
  const suffix = fifo ? '.fifo' : ''
  queues.push(`${endpoints.sqs.endpoint}/000000000000/${queue}${suffix}`, `${endpoints.sqs.endpoint}/000000000000/${queue}-dlq${suffix}`)
  calls = new Map()
  const { code, stderr, ms } = await spawnTimed([BIN, 'produce', '-n', 'bench'], { cwd, env, inputFile: fifo ? fifoInputPath : inputPath, stdout: 'ignore' })
  if (code !== 0) throw new Error(`wal produce exited ${code}:\n${stderr}`)
  const made = { total: totalCalls(), byAction: Object.fromEntries(calls) }
  const n = await count(`${endpoints.sqs.endpoint}/000000000000/${queue}${suffix}`)
  if (n !== records) throw new Error(`wal produce exited 0 but the queue holds ${n} messages, not ${records}`)
  return { ms, calls: made }
}

async function runRaw(run) {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `bench-raw-${process.pid}-${run}` }))
  queues.push(QueueUrl)
  calls = new Map()
  const { code, stderr, ms } = await spawnTimed([join(ROOT, 'bench', 'raw-sqs-produce.js'), proxyEndpoint, QueueUrl], { cwd, env: process.env, inputFile: inputPath })
  if (code !== 0) throw new Error(`raw producer exited ${code}:\n${stderr}`)
  const made = { total: totalCalls(), byAction: Object.fromEntries(calls) }
  const n = await count(QueueUrl)
  if (n !== records) throw new Error(`the raw producer's queue holds ${n} messages, not ${records}`)
  return { ms, calls: made }
}

await runOrExit(
  async () => {
    const walMs = []
    const fifoMs = []
    const rawMs = []
    let walCalls
    let rawCalls
    for (let run = 0; run < RUNS; run++) {
      const wal = await runWal(run)
      const fifo = await runWal(run, { fifo: true })
      const raw = await runRaw(run)
      walMs.push(wal.ms)
      fifoMs.push(fifo.ms)
      rawMs.push(raw.ms)
      walCalls = wal.calls
      rawCalls = raw.calls
      console.log(`run ${run + 1}/${RUNS}: wal ${wal.ms.toFixed(0)} ms (${wal.calls.total} calls), wal FIFO ${fifo.ms.toFixed(0)} ms (${fifo.calls.total} calls), raw SendMessageBatch ${raw.ms.toFixed(0)} ms (${raw.calls.total} calls)`)
    }
    const wal = throughput(records, walMs)
    const raw = throughput(records, rawMs)
    const fifo = throughput(records, fifoMs)
    const ratio = wal.perSec / raw.perSec
    const per1000 = (walCalls.total / records) * 1000
    console.log(
      `sqs produce ${countLabel(records)} x ~${meanPayload}B: wal ${fmt(wal.perSec)}/s; raw SendMessageBatch ${fmt(raw.perSec)}/s (ratio ${ratio.toFixed(2)}x, aim >= ${AIM}x); ` +
        `wal ${per1000.toFixed(1)} API calls per 1,000 messages (aim <= ${AIM_CALLS}; raw ${((rawCalls.total / records) * 1000).toFixed(1)})`,
    )
    console.log(`sqs produce FIFO, ${FIFO_KEYS} keys, sends ordered per message group: wal ${fmt(fifo.perSec)}/s against ${fmt(wal.perSec)}/s on a standard queue (${(fifo.perSec / wal.perSec).toFixed(2)}x)`)
    console.log(JSON.stringify({ bench: 'sqs-produce', records, payloadBytes: meanPayload, runs: RUNS, walMs: walMs.map(Math.round), rawMs: rawMs.map(Math.round), walPerSec: Math.round(wal.perSec), fifoPerSec: Math.round(fifo.perSec), fifoMs: fifoMs.map(Math.round), rawPerSec: Math.round(raw.perSec), ratio: Number(ratio.toFixed(3)), walCallsPer1000: Number(per1000.toFixed(1)), walCalls: walCalls.byAction, rawCalls: rawCalls.byAction }))
  },
  async () => {
    await Promise.all(queues.map((QueueUrl) => sqs.send(new DeleteQueueCommand({ QueueUrl })).catch(() => undefined)))
    sqs.destroy()
    proxy.close()
    sandbox.cleanup()
  },
)
