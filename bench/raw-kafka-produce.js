// What a user would write instead of `wal produce` on Kafka: read NDJSON from stdin, and send it with
// kafkajs's idempotent producer (acks from all in-sync replicas) in batches of the same size wal uses,
// keyed so Kafka's partitioner keeps per-key order.
//
//   node bench/raw-kafka-produce.js BROKERS TOPIC BATCH < input.ndjson
import { createInterface } from 'node:readline'
import { Kafka, logLevel } from 'kafkajs'

const [brokers, topic, batchText] = process.argv.slice(2)
const batchSize = Number(batchText)
const kafka = new Kafka({ clientId: 'raw', brokers: brokers.split(','), logLevel: logLevel.NOTHING })
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
await producer.connect()
let batch = []
let sent = 0
const flush = async () => {
  if (batch.length === 0) return
  await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: batch }] })
  sent += batch.length
  batch = []
}
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line) continue
  const { key, payload } = JSON.parse(line)
  batch.push({ key, value: JSON.stringify(payload) })
  if (batch.length >= batchSize) await flush()
}
await flush()
await producer.disconnect()
console.log(sent)
