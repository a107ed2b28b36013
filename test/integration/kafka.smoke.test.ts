/**
 * Smoke tests of the Kafka test server (scripts/services/kafka.js): every listener the integration tests
 * rely on carries real traffic, and the secured ones refuse what they should. Expects the servers to be
 * up (`node scripts/services.js up`); the toxic listener also needs Toxiproxy's `kafka` proxy.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { Kafka, logLevel, type IHeaders, type KafkaConfig, type SASLOptions } from 'kafkajs'
import { describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'

const kafka = endpoints.kafka
const tlsFile = (file: string) => readFileSync(join(kafka.tls.dir, file))

/** Short timeouts and no retries: a refused connection must fail fast, not after kafkajs's backoff. */
function client(config: Omit<KafkaConfig, 'clientId'>): Kafka {
  return new Kafka({ clientId: 'wal-kafka-smoke', connectionTimeout: 3000, requestTimeout: 5000, logLevel: logLevel.NOTHING, ...config })
}

const uniqueTopic = (label: string) => `wal-smoke-${label}-${randomBytes(4).toString('hex')}`

async function waitFor(check: () => boolean, { timeoutMs = 20_000, intervalMs = 50, what = 'condition' } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

interface Received {
  partition: number
  key: Buffer | null
  value: Buffer | null
  headers: IHeaders
}

/**
 * Creates a 3-partition topic, produces keyed messages with headers and binary values (acks from all
 * replicas), consumes them from the beginning in a fresh group, and returns what came back.
 */
async function roundTrip(config: Omit<KafkaConfig, 'clientId'>, label: string) {
  const kafkaClient = client(config)
  const topic = uniqueTopic(label)
  const sent = ['a', 'b', 'c'].flatMap((key) =>
    [0, 1, 2].map((seq) => ({
      key: Buffer.from(`key-${key}`),
      // Bytes that are not valid UTF-8 (0xff, 0xfe) and a NUL: the value must come back byte for byte.
      value: Buffer.concat([Buffer.from([0x00, 0xff, 0xfe, seq]), randomBytes(32)]),
      headers: { 'wal-seq': String(seq), 'wal-bin': Buffer.from([0xde, 0xad, 0xbe, 0xef, seq]) },
    })),
  )
  const admin = kafkaClient.admin()
  const producer = kafkaClient.producer({ allowAutoTopicCreation: false })
  const consumer = kafkaClient.consumer({ groupId: `${topic}-group`, maxWaitTimeInMs: 250 })
  const received: Received[] = []
  try {
    await admin.connect()
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
    await producer.connect()
    await producer.send({ topic, acks: -1, messages: sent })

    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        received.push({ partition, key: message.key, value: message.value, headers: message.headers ?? {} })
      },
    })
    await waitFor(() => received.length >= sent.length, { what: `${sent.length} messages on ${topic}` })
    return { sent, received }
  } finally {
    await consumer.disconnect().catch(() => {})
    await producer.disconnect().catch(() => {})
    await admin.deleteTopics({ topics: [topic] }).catch(() => {})
    await admin.disconnect().catch(() => {})
  }
}

function expectFaithful({ sent, received }: Awaited<ReturnType<typeof roundTrip>>) {
  expect(received).toHaveLength(sent.length)
  for (const message of sent) {
    const match = received.find((r) => r.value?.equals(message.value))
    expect(match, `message ${message.key.toString()} seq ${message.headers['wal-seq']}`).toBeDefined()
    expect(match!.key).toEqual(message.key)
    expect(match!.headers['wal-seq']).toEqual(Buffer.from(message.headers['wal-seq']))
    expect(match!.headers['wal-bin']).toEqual(message.headers['wal-bin'])
  }
  // One key, one partition, in the order produced.
  for (const key of new Set(sent.map((m) => m.key.toString()))) {
    const ofKey = received.filter((r) => r.key?.toString() === key)
    expect(new Set(ofKey.map((r) => r.partition)).size).toBe(1)
    expect(ofKey.map((r) => r.headers['wal-seq']?.toString())).toEqual(['0', '1', '2'])
  }
}

/** Connects an admin client and describes the cluster; the caller decides what should happen. */
async function describeCluster(config: Omit<KafkaConfig, 'clientId'>) {
  const admin = client({ ...config, connectionTimeout: 2000, requestTimeout: 3000, retry: { retries: 0 } }).admin()
  try {
    await admin.connect()
    return await admin.describeCluster()
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

/** Expects the connection to be refused for `reason`: a hang would fail on kafkajs's timeout message instead. */
async function expectRefused(config: Omit<KafkaConfig, 'clientId'>, reason: RegExp) {
  await expect(describeCluster(config)).rejects.toThrow(reason)
}

/** SCRAM options for the test user; kafkajs types each mechanism separately, hence the two branches. */
function scram(mechanism: 'scram-sha-256' | 'scram-sha-512', password = kafka.scram.password): SASLOptions {
  const credentials = { username: kafka.scram.username, password }
  return mechanism === 'scram-sha-256' ? { mechanism, ...credentials } : { mechanism, ...credentials }
}

const trustedClient = () => ({ ca: [tlsFile('ca.pem')], cert: tlsFile('client.pem'), key: tlsFile('client-key.pem') })

describe('the Kafka test server', { timeout: 30_000 }, () => {
  it('round-trips keys, headers and binary values over PLAINTEXT, one partition per key, in order', async () => {
    expectFaithful(await roundTrip({ brokers: kafka.brokers }, 'plaintext'))
  })

  it('round-trips over the SSL listener for a client whose certificate the test CA signed', async () => {
    expectFaithful(await roundTrip({ brokers: kafka.sslBrokers, ssl: trustedClient() }, 'ssl'))
  })

  it.each(['scram-sha-256', 'scram-sha-512'] as const)('round-trips over SASL_PLAINTEXT with %s', async (mechanism) => {
    expectFaithful(await roundTrip({ brokers: kafka.saslBrokers, sasl: scram(mechanism) }, mechanism))
  })

  it('refuses, with a TLS alert rather than a timeout, an SSL client that presents no certificate', async () => {
    await expectRefused({ brokers: kafka.sslBrokers, ssl: { ca: [tlsFile('ca.pem')] } }, /ssl\/tls alert/i)
  })

  it('refuses, with a TLS alert rather than a timeout, an SSL client whose certificate no trusted CA signed', async () => {
    const ssl = { ca: [tlsFile('ca.pem')], cert: tlsFile('untrusted.pem'), key: tlsFile('untrusted-key.pem') }
    await expectRefused({ brokers: kafka.sslBrokers, ssl }, /ssl\/tls alert/i)
  })

  it.each(['scram-sha-256', 'scram-sha-512'] as const)('refuses a wrong %s password with an authentication error', async (mechanism) => {
    const sasl = scram(mechanism, `${kafka.scram.password}-wrong`)
    await expect(describeCluster({ brokers: kafka.saslBrokers, sasl })).rejects.toMatchObject({
      name: 'KafkaJSSASLAuthenticationError',
      message: expect.stringMatching(/invalid credentials/),
    })
  })

  it("advertises the toxic listener at Toxiproxy's address and round-trips through the proxy", async () => {
    const cluster = await describeCluster({ brokers: kafka.toxicBrokers })
    expect(cluster.brokers.map((b) => `${b.host}:${b.port}`)).toEqual([kafka.toxicBrokers[0]])
    expectFaithful(await roundTrip({ brokers: kafka.toxicBrokers }, 'toxic'))
  })
})
