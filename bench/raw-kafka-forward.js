// What a user would write instead of `wal consume` with a Kafka target: a kafkajs consumer group that
// forwards each fetched batch to another topic (in sends of up to 1000 records) (idempotent producer, acks=all) and commits the batch's
// offsets after the send. Exits once `count` records were forwarded.
//
//   node bench/raw-kafka-forward.js BROKERS FROM_TOPIC TO_TOPIC COUNT
import { Kafka, logLevel } from 'kafkajs'

const [brokers, from, to, countText] = process.argv.slice(2)
const count = Number(countText)
const kafka = new Kafka({ clientId: 'raw-forward', brokers: brokers.split(','), logLevel: logLevel.NOTHING })
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
const consumer = kafka.consumer({ groupId: `raw-forward-${process.pid}` })
await Promise.all([producer.connect(), consumer.connect()])
await consumer.subscribe({ topic: from, fromBeginning: true })
let forwarded = 0
let finish
const done = new Promise((resolve) => (finish = resolve))
await consumer.run({
  autoCommit: false,
  eachBatch: async ({ batch, resolveOffset }) => {
    const messages = batch.messages.map((m) => ({ key: m.key, value: m.value, headers: m.headers, timestamp: m.timestamp }))
    // In sends of at most 1000 records (as wal's Kafka target), under the broker's request size limit.
    for (let i = 0; i < messages.length; i += 1000) await producer.send({ topic: to, acks: -1, messages: messages.slice(i, i + 1000) })
    const next = String(Number(batch.lastOffset()) + 1)
    resolveOffset(batch.lastOffset())
    await consumer.commitOffsets([{ topic: from, partition: batch.partition, offset: next }])
    forwarded += messages.length
    if (forwarded >= count) finish()
  },
})
await done
await consumer.disconnect()
await producer.disconnect()
console.log(forwarded)
