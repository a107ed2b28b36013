// Apache Kafka in KRaft combined mode (one node is broker and controller), run from its Maven artifacts
// on the JVM, with one listener per way the tests connect: PLAINTEXT, SSL with client certificates
// (mTLS), SASL_PLAINTEXT with SCRAM users, and a PLAINTEXT listener advertised at Toxiproxy's address.
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { RUN_DIR, endpoints } from './endpoints.js'
import { ServiceError, ensureDir, mavenFetch, requireTool, startProcess, stopProcess, waitUntilReady } from './lib.js'

export const name = 'kafka'
export const external = endpoints.kafka.external
// 3–9 s alone on two cores here; far more beside another JVM that is starting, so allow plenty.
export const readyTimeoutMs = 180_000

// 3.9, the last 3.x line: kafkajs 2.2.4 is proven against it; 4.x should work but is less proven.
const VERSION = '3.9.1'
const ARTIFACTS = [
  `org.apache.kafka:kafka_2.13:${VERSION}`,
  // Kafka's pom leaves the logging backend to the distribution; without these the server logs nothing.
  'org.slf4j:slf4j-reload4j:1.7.36',
  'ch.qos.reload4j:reload4j:1.2.25',
]
const JDK17 = '/usr/lib/jvm/java-17-openjdk-amd64/bin'
// Only guards throwaway test certificates on loopback; kept fixed so the stores can be reused.
const STORE_PASSWORD = 'wal-test-store'

const kafka = endpoints.kafka

export function describe() {
  return [
    `plaintext ${kafka.brokers.join(',')}`,
    `ssl (mTLS) ${kafka.sslBrokers.join(',')}`,
    `sasl scram ${kafka.saslBrokers.join(',')}`,
    `toxic ${kafka.toxicBrokers.join(',')} → ${kafka.toxicUpstream}`,
  ].join(', ')
}

/** Runs a tool to completion; a failure becomes a ServiceError carrying its output. */
function run(command, args, { cwd } = {}) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? result.error.message : ''}`
    throw new ServiceError(`${name}: ${command} ${args[0]} failed:\n${output.split('\n').slice(-20).join('\n')}`)
  }
  return result.stdout
}

const TLS_FILES = ['ca.pem', 'client.pem', 'client-key.pem', 'untrusted.pem', 'untrusted-key.pem', 'broker.keystore.p12', 'broker.truststore.p12']

// Extensions are explicit because Node and the JDK are strict: the broker certificate needs an IP SAN
// (clients connect to 127.0.0.1, and Node checks the address against the SAN, not the CN), the CA
// needs CA:TRUE and keyCertSign, and extended key usages must match each side of the handshake.
const OPENSSL_CONFIG = `[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[untrusted]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
`

/**
 * A test CA, a broker certificate and a client certificate signed by it, and a self-signed "untrusted"
 * client certificate for negative tests. Made once: a later start reuses them, so PEM files the tests
 * read stay valid across restarts. Built in a scratch folder and renamed, so a failure leaves no half set.
 */
function ensureCertificates(keytool) {
  const dir = kafka.tls.dir
  if (TLS_FILES.every((file) => existsSync(join(dir, file)))) return dir
  requireTool('openssl', 'install OpenSSL (Debian: apt-get install openssl)')
  const scratch = `${dir}.tmp-${process.pid}`
  rmSync(scratch, { recursive: true, force: true })
  ensureDir(scratch)
  const cnf = join(scratch, 'openssl.cnf')
  writeFileSync(cnf, OPENSSL_CONFIG)
  const openssl = (...args) => run('openssl', args, { cwd: scratch })
  const days = ['-days', '3650']
  const serial = () => ['-set_serial', `0x${randomBytes(8).toString('hex')}`]
  const newKey = ['-newkey', 'rsa:2048', '-nodes']

  openssl('req', '-x509', '-config', cnf, '-extensions', 'ca', ...newKey, '-keyout', 'ca-key.pem', '-out', 'ca.pem', ...days, '-subj', '/CN=wal test CA')
  for (const [file, subject, section] of [
    ['broker', '/CN=localhost', 'broker'],
    ['client', '/CN=wal-test-client', 'client'],
  ]) {
    openssl('req', '-new', '-config', cnf, ...newKey, '-keyout', `${file}-key.pem`, '-out', `${file}.csr`, '-subj', subject)
    openssl('x509', '-req', '-in', `${file}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', ...serial(), ...days, '-extfile', cnf, '-extensions', section, '-out', `${file}.pem`)
  }
  openssl('req', '-x509', '-config', cnf, '-extensions', 'untrusted', ...newKey, '-keyout', 'untrusted-key.pem', '-out', 'untrusted.pem', ...days, '-subj', '/CN=wal-untrusted-client')

  // The broker's stores: its key with the chain, and the CA it trusts for client certificates.
  openssl('pkcs12', '-export', '-in', 'broker.pem', '-inkey', 'broker-key.pem', '-certfile', 'ca.pem', '-name', 'broker', '-out', 'broker.keystore.p12', '-passout', `pass:${STORE_PASSWORD}`)
  // keytool, not openssl, for the truststore: the JDK only trusts a key-less PKCS12 entry that carries
  // its own "trusted certificate" attribute, which keytool writes.
  run(keytool, ['-importcert', '-noprompt', '-alias', 'wal-test-ca', '-file', 'ca.pem', '-keystore', 'broker.truststore.p12', '-storetype', 'PKCS12', '-storepass', STORE_PASSWORD], { cwd: scratch })

  rmSync(dir, { recursive: true, force: true })
  renameSync(scratch, dir)
  return dir
}

function serverProperties({ tls, data }) {
  const listeners = {
    PLAINTEXT: kafka.brokers[0],
    SSL: kafka.sslBrokers[0],
    SASL_PLAINTEXT: kafka.saslBrokers[0],
    TOXIC: kafka.toxicUpstream,
  }
  const scramJaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required;'
  return `# Written by scripts/services/kafka.js on each start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${kafka.controllerPort}
controller.listener.names=CONTROLLER
listeners=${Object.entries(listeners).map(([n, a]) => `${n}://${a}`).join(',')},CONTROLLER://127.0.0.1:${kafka.controllerPort}
# The toxic listener is advertised at Toxiproxy's address: after the first metadata call a client talks
# to the proxy only, so a toxic applies to produce and fetch too, not just to bootstrap.
advertised.listeners=${Object.entries(listeners).map(([n, a]) => `${n}://${n === 'TOXIC' ? kafka.toxicBrokers[0] : a}`).join(',')}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,TOXIC:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT

# mTLS: the SSL listener refuses clients without a certificate signed by the test CA.
listener.name.ssl.ssl.client.auth=required
listener.name.ssl.ssl.keystore.type=PKCS12
listener.name.ssl.ssl.keystore.location=${join(tls, 'broker.keystore.p12')}
listener.name.ssl.ssl.keystore.password=${STORE_PASSWORD}
listener.name.ssl.ssl.key.password=${STORE_PASSWORD}
listener.name.ssl.ssl.truststore.type=PKCS12
listener.name.ssl.ssl.truststore.location=${join(tls, 'broker.truststore.p12')}
listener.name.ssl.ssl.truststore.password=${STORE_PASSWORD}

# SCRAM users are written into the metadata log when the storage is formatted (see format()).
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=${scramJaas}
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=${scramJaas}

log.dirs=${data}
num.partitions=1
auto.create.topics.enable=true
# One node: internal topics cannot have more replicas, and fewer partitions make the first consumer
# group and the first transaction start in well under a second.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
`
}

const LOG4J = `# Written by scripts/services/kafka.js: warnings, plus the lines that show the server started.
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.KafkaRaftServer=INFO
`

/**
 * Formats the storage (cluster id, SCRAM users) once. SCRAM users can only be added at format time in
 * this setup, so a change of credentials or quorum wipes the data and formats again.
 */
function format({ java, classpath, log4j, properties, data, dir }) {
  const fingerprint = createHash('sha256').update(JSON.stringify({ VERSION, scram: kafka.scram, controllerPort: kafka.controllerPort, data })).digest('hex')
  const marker = join(dir, '.formatted')
  if (existsSync(marker) && readFileSync(marker, 'utf8') === fingerprint && existsSync(join(data, 'meta.properties'))) return
  rmSync(data, { recursive: true, force: true })
  const tool = (...args) => run(java, [`-Dlog4j.configuration=file:${log4j}`, '-cp', classpath, 'kafka.tools.StorageTool', ...args])
  const clusterId = tool('random-uuid').trim()
  const { username, password } = kafka.scram
  tool(
    'format', '-t', clusterId, '-c', properties, '--ignore-formatted',
    '-S', `SCRAM-SHA-256=[name=${username},password=${password}]`,
    '-S', `SCRAM-SHA-512=[name=${username},password=${password}]`,
  )
  writeFileSync(marker, fingerprint)
}

export async function start() {
  const java = existsSync(join(JDK17, 'java')) ? join(JDK17, 'java') : 'java'
  const keytool = existsSync(join(JDK17, 'keytool')) ? join(JDK17, 'keytool') : 'keytool'
  if (java === 'java') requireTool('java', 'install a JDK 17 (Debian: apt-get install openjdk-17-jre-headless)')
  if (keytool === 'keytool') requireTool('keytool', 'install a JDK 17 (Debian: apt-get install openjdk-17-jre-headless)')
  const lib = mavenFetch(name, ARTIFACTS)
  const classpath = `${lib}/*`
  const dir = ensureDir(RUN_DIR, name)
  const data = join(dir, 'data')
  const tls = ensureCertificates(keytool)

  const properties = join(dir, 'server.properties')
  writeFileSync(properties, serverProperties({ tls, data }))
  const log4j = join(dir, 'log4j.properties')
  writeFileSync(log4j, LOG4J)
  format({ java, classpath, log4j, properties, data, dir })

  startProcess(name, java, ['-Xmx512m', '-Xms512m', '-Djava.awt.headless=true', `-Dlog4j.configuration=file:${log4j}`, '-cp', classpath, 'kafka.Kafka', properties], { cwd: dir })
}

/** True when a real admin call (DescribeCluster over PLAINTEXT) succeeds. */
export async function ready() {
  // kafkajs is a devDependency, and only this check needs it.
  const kafkajs = await import('kafkajs')
  const { Kafka, logLevel } = kafkajs.default ?? kafkajs
  const client = new Kafka({
    clientId: 'wal-services-ready',
    brokers: kafka.brokers,
    connectionTimeout: 1000,
    requestTimeout: 3000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  })
  const admin = client.admin()
  try {
    await admin.connect()
    const cluster = await admin.describeCluster()
    return cluster.brokers.length > 0
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

/**
 * A broker of a test's own, for tests that stop and restart one (the shared broker is never stopped):
 * PLAINTEXT only, on ports and in a data directory the caller gives, KRaft combined mode, formatted on
 * first start. Its log is RUN_DIR/logs/<name>.log. Returns `start()` (waits until it answers), `stop()`
 * (SIGTERM, then SIGKILL after `graceMs`), `brokers` and `ready()`.
 */
export function privateBroker({ name, port, controllerPort, dataDir }) {
  const java = existsSync(join(JDK17, 'java')) ? join(JDK17, 'java') : 'java'
  if (java === 'java') requireTool('java', 'install a JDK 17 (Debian: apt-get install openjdk-17-jre-headless)')
  const lib = mavenFetch('kafka', ARTIFACTS)
  const classpath = `${lib}/*`
  const data = join(dataDir, 'data')
  const properties = join(dataDir, 'server.properties')
  const log4j = join(dataDir, 'log4j.properties')
  const address = `127.0.0.1:${port}`
  writeFileSync(
    properties,
    `# A private test broker, written by scripts/services/kafka.js (privateBroker).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controllerPort}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://${address},CONTROLLER://127.0.0.1:${controllerPort}
advertised.listeners=PLAINTEXT://${address}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${data}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
`,
  )
  writeFileSync(log4j, LOG4J)
  if (!existsSync(join(data, 'meta.properties'))) {
    const tool = (...args) => run(java, [`-Dlog4j.configuration=file:${log4j}`, '-cp', classpath, 'kafka.tools.StorageTool', ...args])
    tool('format', '-t', tool('random-uuid').trim(), '-c', properties, '--ignore-formatted')
  }
  const ready = async () => {
    const kafkajs = await import('kafkajs')
    const { Kafka, logLevel } = kafkajs.default ?? kafkajs
    const admin = new Kafka({ clientId: 'wal-services-ready', brokers: [address], connectionTimeout: 1000, requestTimeout: 3000, retry: { retries: 0 }, logLevel: logLevel.NOTHING }).admin()
    try {
      await admin.connect()
      return (await admin.describeCluster()).brokers.length > 0
    } finally {
      await admin.disconnect().catch(() => {})
    }
  }
  return {
    brokers: [address],
    ready,
    async start() {
      startProcess(name, java, ['-Xmx512m', '-Xms256m', '-Djava.awt.headless=true', `-Dlog4j.configuration=file:${log4j}`, '-cp', classpath, 'kafka.Kafka', properties], { cwd: dataDir })
      await waitUntilReady(name, ready, { timeoutMs: readyTimeoutMs, intervalMs: 100 })
    },
    stop: ({ graceMs = 20_000 } = {}) => stopProcess(name, { graceMs }),
  }
}
