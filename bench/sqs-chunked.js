// Chunked payloads on SQS: `wal produce --payload-file` of one large JSON payload (10 MiB by default)
// into an SQS namespace of the test ElasticMQ — above SQS's 256 KiB, so wal keeps it in the namespace's
// state store as chunks and enqueues a reference — against a raw @aws-sdk/client-sqs SendMessage of the
// same bytes cut into messages of just under 256 KiB, one request after another. Both are timed from
// spawn to exit, alternating runs. Needs ElasticMQ (`npm run services -- up`).
//
//   npm run build && node bench/sqs-chunked.js [--mib N]
//
// Reports MiB/s of both and the ratio; does not gate. Exits 1 when wal fails.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { CreateQueueCommand, DeleteQueueCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs'

import { endpoints } from '../scripts/services/endpoints.js'
import { BIN, benchSandbox, median, runOrExit, spawnTimed, writeLargePayload } from './lib.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const MESSAGE_BYTES = 256 * 1024 - 1024
const { values } = parseArgs({ options: { mib: { type: 'string', default: '10' } } })
const mib = Number(values.mib)
const sandbox = benchSandbox('sqs-chunked')
const { work, cwd } = sandbox
const { sqs } = endpoints
const client = new SQSClient({ endpoint: sqs.endpoint, region: sqs.region, credentials: { ...sqs.credentials } })
const queues = []

const { path: payloadPath } = writeLargePayload(work, mib)

// The raw side, run as its own process so it pays the same Node start-up as `wal produce`.
const RAW = join(work, 'raw.mjs')
writeFileSync(
  RAW,
  `import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
const { SQSClient, SendMessageCommand } = createRequire(${JSON.stringify(join(process.cwd(), 'package.json'))})('@aws-sdk/client-sqs')
const [endpoint, region, id, secret, url, path, size] = process.argv.slice(2)
const value = readFileSync(path, 'utf8')
const client = new SQSClient({ endpoint, region, credentials: { accessKeyId: id, secretAccessKey: secret } })
for (let at = 0; at < value.length; at += Number(size)) await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: value.slice(at, at + Number(size)) }))
client.destroy()
`,
)

async function runWal(run) {
  const queue = `wal-bench-chunk-${process.pid}-${run}`
  queues.push(queue, `${queue}-dlq`)
  writeFileSync(
    join(cwd, '.walrc.json'),
    JSON.stringify({
      clusters: { sqs: { bench: { region: sqs.region, endpoint: sqs.endpoint, accessKeyId: sqs.credentials.accessKeyId, secretAccessKey: sqs.credentials.secretAccessKey } } },
      namespaces: { bench: { backend: 'sqs', cluster: 'bench', queue, shards: 1, maxPayloadBytes: 64 * 1024 * 1024, targets: { kv: { type: 'kv' } } } },
    }),
  )
  const env = sandbox.env(join(work, `wal-${run}`))
  const init = await spawnTimed([BIN, 'ns', 'init', 'bench'], { cwd, env })
  if (init.code !== 0) throw new Error(`wal ns init exited ${init.code}:\n${init.stderr}`)
  const { code, stderr, ms } = await spawnTimed([BIN, 'produce', '-n', 'bench', '-k', 'big', '--payload-file', payloadPath], { cwd, env })
  if (code !== 0) throw new Error(`wal produce exited ${code}:\n${stderr}`)
  return ms
}

async function runRaw(run) {
  const queue = `wal-bench-chunk-raw-${process.pid}-${run}`
  queues.push(queue)
  const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: queue }))
  const { code, stderr, ms } = await spawnTimed([RAW, sqs.endpoint, sqs.region, sqs.credentials.accessKeyId, sqs.credentials.secretAccessKey, QueueUrl, payloadPath, String(MESSAGE_BYTES)], { cwd, env: process.env })
  if (code !== 0) throw new Error(`raw sender exited ${code}:\n${stderr}`)
  return ms
}

await runOrExit(
  async () => {
    const walMs = []
    const rawMs = []
    for (let run = 0; run < RUNS; run++) {
      walMs.push(await runWal(run))
      rawMs.push(await runRaw(run))
    }
    const wal = (mib / median(walMs)) * 1000
    const raw = (mib / median(rawMs)) * 1000
    console.log(`sqs chunked produce of one ${mib} MiB payload (state store + a reference message, median of ${RUNS}): wal ${wal.toFixed(1)} MiB/s; raw SendMessage of the same bytes in ${MESSAGE_BYTES}-byte messages ${raw.toFixed(1)} MiB/s (ratio ${(wal / raw).toFixed(2)}x)`)
    console.log(JSON.stringify({ bench: 'sqs-chunked', mib, runs: RUNS, walMs: walMs.map(Math.round), rawMs: rawMs.map(Math.round) }))
  },
  async () => {
    for (const QueueName of queues) {
      const url = await client.send(new GetQueueUrlCommand({ QueueName })).catch(() => undefined)
      if (url?.QueueUrl) await client.send(new DeleteQueueCommand({ QueueUrl: url.QueueUrl })).catch(() => undefined)
    }
    client.destroy()
    sandbox.cleanup()
  },
)
