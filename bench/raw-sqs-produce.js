// What a user would write instead of `wal produce` on SQS: read NDJSON from stdin and send it with
// @aws-sdk/client-sqs's SendMessageBatch, 10 messages a request, 16 requests in flight (as wal does),
// retrying entries SQS failed on its side.
//
//   node bench/raw-sqs-produce.js ENDPOINT QUEUE_URL < input.ndjson
import { createInterface } from 'node:readline'
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs'

const [endpoint, queueUrl] = process.argv.slice(2)
const client = new SQSClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'raw', secretAccessKey: 'raw' }, useQueueUrlAsEndpoint: false })
const IN_FLIGHT = 16
const pending = new Set()
let sent = 0

async function send(entries) {
  for (let left = entries; left.length > 0; ) {
    const { Failed = [] } = await client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: left }))
    if (Failed.some((f) => f.SenderFault)) throw new Error(`rejected: ${Failed[0].Message}`)
    const failed = new Set(Failed.map((f) => f.Id))
    sent += left.length - failed.size
    left = left.filter((e) => failed.has(e.Id))
  }
}

let batch = []
const flush = async () => {
  if (batch.length === 0) return
  const p = send(batch.map((e, i) => ({ ...e, Id: String(i) })))
  batch = []
  pending.add(p)
  p.finally(() => pending.delete(p))
  if (pending.size >= IN_FLIGHT) await Promise.race(pending)
}
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line) continue
  const { key, payload } = JSON.parse(line)
  batch.push({ MessageBody: JSON.stringify(payload), MessageAttributes: { key: { DataType: 'String', StringValue: key } } })
  if (batch.length >= 10) await flush()
}
await flush()
await Promise.all(pending)
client.destroy()
console.log(sent)
