// Apache Cassandra 5.0, one node, run from the cassandra-all Maven artifact (no tarball, no Docker) on JDK 17.
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { RUN_DIR, endpoints } from './endpoints.js'
import { ServiceError, ensureDir, mavenFetch, requireTool, startProcess } from './lib.js'

export const name = 'cassandra'
export const external = endpoints.cassandra.external
// 20–60 s alone on 2 cores; much more while Kafka's JVM starts beside it.
export const readyTimeoutMs = 300_000

const VERSION = '5.0.8'
// Cassandra 5.0 supports JDK 11 and 17 only: a newer default java (the Temurin 25 beside it) fails at start.
const JDK17 = '/usr/lib/jvm/java-17-openjdk-amd64/bin/java'

// From Cassandra's conf/jvm17-server.options: the internals that Cassandra, jamm, chronicle and netty reach into.
const JDK17_MODULE_FLAGS = [
  '-Djdk.attach.allowAttachSelf=true',
  ...[
    'java.base/jdk.internal.misc',
    'java.management.rmi/com.sun.jmx.remote.internal.rmi',
    'java.rmi/sun.rmi.registry',
    'java.rmi/sun.rmi.server',
    'java.sql/java.sql',
    'java.base/java.lang.ref',
    'jdk.unsupported/sun.misc',
    'jdk.compiler/com.sun.tools.javac.file',
    'jdk.attach/sun.tools.attach',
  ].flatMap((p) => ['--add-exports', `${p}=ALL-UNNAMED`]),
  ...[
    'java.base/java.lang.module',
    'java.base/jdk.internal.loader',
    'java.base/jdk.internal.ref',
    'java.base/jdk.internal.reflect',
    'java.base/jdk.internal.math',
    'java.base/jdk.internal.module',
    'java.base/jdk.internal.util.jar',
    'jdk.management/com.sun.management.internal',
    'java.base/sun.nio.ch',
    'java.base/java.io',
    'java.base/java.lang.reflect',
    'jdk.compiler/com.sun.tools.javac',
    'java.base/java.lang',
    'java.base/java.util',
  ].flatMap((p) => ['--add-opens', `${p}=ALL-UNNAMED`]),
  // Also from that file: netty's direct buffers through Unsafe, and the pre-4.1.75 allocator defaults.
  '-Dio.netty.tryReflectionSetAccessible=true',
  '-Dio.netty.allocator.useCacheForAllThreads=true',
  '-Dio.netty.allocator.maxOrder=11',
]

export function describe() {
  return `CQL at ${endpoints.cassandra.contactPoints.join(',')} (datacenter ${endpoints.cassandra.localDataCenter})`
}

export async function start() {
  requireTool('java', 'install JDK 17 (Debian: apt-get install openjdk-17-jre-headless)')
  const lib = mavenFetch(name, [`org.apache.cassandra:cassandra-all:${VERSION}`])
  const jamm = readdirSync(lib).find((f) => /^jamm-.*\.jar$/.test(f))
  if (!jamm) throw new ServiceError(`no jamm jar in ${lib}: delete ${join(lib, '..', '.fetched')} and retry`)

  const dir = ensureDir(RUN_DIR, name)
  const [host, port] = endpoints.cassandra.contactPoints[0].split(':')
  const { storagePort } = endpoints.cassandra
  const yaml = join(dir, 'cassandra.yaml')
  // Only what differs from Config's defaults, in 5.0 key names: Cassandra rejects unknown keys.
  writeFileSync(
    yaml,
    `# Written by scripts/services/cassandra.js on each start.
cluster_name: wal-test
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "${host}:${storagePort}"
listen_address: ${host}
rpc_address: ${host}
storage_port: ${storagePort}
start_native_transport: true
native_transport_port: ${port}
# A test server: dropped tables and keyspaces need not be kept.
auto_snapshot: false
data_file_directories:
  - ${join(dir, 'data')}
commitlog_directory: ${join(dir, 'commitlog')}
saved_caches_directory: ${join(dir, 'saved_caches')}
hints_directory: ${join(dir, 'hints')}
cdc_raw_directory: ${join(dir, 'cdc_raw')}
`,
  )
  const logback = join(dir, 'logback.xml')
  writeFileSync(
    logback,
    `<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{20} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
`,
  )
  const java = existsSync(JDK17) ? JDK17 : 'java'
  startProcess(
    name,
    java,
    [
      '-Xms1g',
      '-Xmx1g',
      '-Xss256k',
      '-XX:+UseG1GC',
      '-XX:+PerfDisableSharedMem',
      // Better dead than corrupt, as Cassandra's start-up check advises.
      '-XX:+ExitOnOutOfMemoryError',
      // Loopback only; also avoids IPv6 surprises where net.ipv6.bindv6only=1.
      '-Djava.net.preferIPv4Stack=true',
      // Measures object sizes for memtables; required.
      `-javaagent:${join(lib, jamm)}`,
      ...JDK17_MODULE_FLAGS,
      `-Dcassandra.config=file://${yaml}`,
      `-Dcassandra.storagedir=${dir}`,
      `-Dcassandra.logdir=${ensureDir(dir, 'logs')}`,
      // An empty triggers folder, or Cassandra warns every minute that it is missing.
      `-Dcassandra.triggers_dir=${ensureDir(dir, 'triggers')}`,
      `-Dlogback.configurationFile=${logback}`,
      // Keep stdout/stderr open: the log goes to RUN_DIR/logs/cassandra.log through them.
      '-Dcassandra-foreground=yes',
      // One node: no gossip to wait for, no delay before the default superuser exists.
      '-Dcassandra.skip_wait_for_gossip_to_settle=0',
      '-Dcassandra.superuser_setup_delay_ms=0',
      // No cassandra.jmx.local.port / remote.port: JMX stays off (no nodetool), so port 7199 is never taken.
      // Chronicle (audit/full-query logs) must not phone home or print banners.
      '-Dchronicle.analytics.disable=true',
      '-Dchronicle.announcer.disable=true',
      '-cp',
      `${lib}/*`,
      'org.apache.cassandra.service.CassandraDaemon',
    ],
    { cwd: dir },
  )
}

/** True when a real CQL query (the server's release_version) succeeds. */
export async function ready() {
  const { Client } = await import('cassandra-driver')
  const client = new Client({
    contactPoints: endpoints.cassandra.contactPoints,
    localDataCenter: endpoints.cassandra.localDataCenter,
    socketOptions: { connectTimeout: 2000, readTimeout: 5000 },
  })
  try {
    await client.connect()
    const result = await client.execute('SELECT release_version FROM system.local')
    return typeof result.first()?.get('release_version') === 'string'
  } finally {
    await client.shutdown().catch(() => {})
  }
}
