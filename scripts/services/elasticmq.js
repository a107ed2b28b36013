// ElasticMQ: an SQS-compatible server (AWS JSON protocol, redrive policies, message move tasks), run from
// its Maven artifact on the JVM.
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { RUN_DIR, endpoints } from './endpoints.js'
import { ensureDir, mavenFetch, requireTool, startProcess } from './lib.js'

export const name = 'elasticmq'
export const external = endpoints.sqs.external
// A small JVM, but it may start while Kafka or Cassandra hog the two cores.
export const readyTimeoutMs = 120_000

// 1.7.x speaks the JSON protocol of @aws-sdk/client-sqs v3 and has StartMessageMoveTask.
const VERSION = '1.7.1'
// Debian's JDK 17 when present (the Temurin 25 beside it is untested with Pekko); else java on PATH.
const JDK17 = '/usr/lib/jvm/java-17-openjdk-amd64/bin/java'

export function describe() {
  return `SQS API at ${endpoints.sqs.endpoint} (region ${endpoints.sqs.region})`
}

export async function start() {
  requireTool('java', 'install a JDK (Debian: apt-get install openjdk-17-jre-headless)')
  const lib = mavenFetch(name, [`org.elasticmq:elasticmq-server_2.13:${VERSION}`])
  const dir = ensureDir(RUN_DIR, name)
  const { hostname, port } = new URL(endpoints.sqs.endpoint)
  const config = join(dir, 'elasticmq.conf')
  writeFileSync(
    config,
    `# Written by scripts/services/elasticmq.js on each start.
include classpath("application.conf")

# Queue URLs the server hands out must point back at this listener.
node-address {
  protocol = http
  host = "${hostname}"
  port = ${port}
  context-path = ""
}
generate-node-address = false

rest-sqs {
  enabled = true
  bind-port = ${port}
  bind-hostname = "${hostname}"
  sqs-limits = strict
}
# (The stats UI, rest-stats on port 9325, is not part of elasticmq-server 1.7: nothing else listens.)

# Queue ARNs (RedrivePolicy, ListDeadLetterSourceQueues) carry this region, the same the clients use.
aws {
  region = "${endpoints.sqs.region}"
  accountId = "000000000000"
}
`,
  )
  const java = existsSync(JDK17) ? JDK17 : 'java'
  // ElasticMQ keeps every message in memory; a whole test run (FIFO and bulk tests write thousands) did
  // not fit in 256 MB. Exit at once on OOM, so a dead server is seen as down, not as a hung one.
  startProcess(name, java, ['-Xmx1g', '-XX:+ExitOnOutOfMemoryError', `-Dconfig.file=${config}`, '-cp', `${lib}/*`, 'org.elasticmq.server.Main'], { cwd: dir })
}

/** True when a real SQS call (ListQueues) succeeds. */
export async function ready() {
  const { SQSClient, ListQueuesCommand } = await import('@aws-sdk/client-sqs')
  const client = new SQSClient({
    endpoint: endpoints.sqs.endpoint,
    region: endpoints.sqs.region,
    credentials: endpoints.sqs.credentials,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 1000, requestTimeout: 3000 },
  })
  try {
    await client.send(new ListQueuesCommand({}))
    return true
  } finally {
    client.destroy()
  }
}
