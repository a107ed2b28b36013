// Where the test servers listen. Each can point at a server run elsewhere (e.g. with Docker, see
// docs/services-compose.yaml) through an environment variable; `services up` then leaves it alone.
import { homedir } from 'node:os'
import { join } from 'node:path'

const env = process.env

/** Downloads (Maven jars, the Toxiproxy binary): kept between runs, outside the repository. */
export const CACHE_DIR = env.WAL_SERVICES_CACHE ?? join(homedir(), '.cache', 'wal-services')
/** Data, logs, pid files and generated certificates of the running servers. */
export const RUN_DIR = env.WAL_SERVICES_RUN ?? join(CACHE_DIR, 'run')

export const endpoints = {
  kafka: {
    external: Boolean(env.WAL_TEST_KAFKA_BROKERS),
    /** PLAINTEXT listener. */
    brokers: (env.WAL_TEST_KAFKA_BROKERS ?? '127.0.0.1:19092').split(','),
    /** SSL listener that requires a client certificate (mTLS). */
    sslBrokers: (env.WAL_TEST_KAFKA_SSL_BROKERS ?? '127.0.0.1:19093').split(','),
    /** SASL_PLAINTEXT listener with SCRAM-SHA-256 and SCRAM-SHA-512 users. */
    saslBrokers: (env.WAL_TEST_KAFKA_SASL_BROKERS ?? '127.0.0.1:19094').split(','),
    /** A PLAINTEXT listener whose advertised address is Toxiproxy's, so faults apply to every call. */
    toxicBrokers: (env.WAL_TEST_KAFKA_TOXIC_BROKERS ?? '127.0.0.1:29092').split(','),
    /** Where the broker's toxic listener really is (the proxy's upstream). */
    toxicUpstream: '127.0.0.1:19096',
    controllerPort: 19095,
    scram: { username: 'wal', password: env.WAL_TEST_KAFKA_SCRAM_PASSWORD ?? 'wal-secret' },
    /** PEM files for mTLS: the CA that signed the broker, and a client certificate and key. */
    tls: {
      dir: env.WAL_TEST_KAFKA_TLS_DIR ?? join(RUN_DIR, 'kafka', 'tls'),
    },
  },
  cassandra: {
    external: Boolean(env.WAL_TEST_CASSANDRA),
    contactPoints: (env.WAL_TEST_CASSANDRA ?? '127.0.0.1:19042').split(','),
    localDataCenter: env.WAL_TEST_CASSANDRA_DC ?? 'datacenter1',
    toxicContactPoints: (env.WAL_TEST_CASSANDRA_TOXIC ?? '127.0.0.1:29042').split(','),
    storagePort: 17000,
  },
  sqs: {
    external: Boolean(env.WAL_TEST_SQS_ENDPOINT),
    endpoint: env.WAL_TEST_SQS_ENDPOINT ?? 'http://127.0.0.1:19324',
    toxicEndpoint: env.WAL_TEST_SQS_TOXIC_ENDPOINT ?? 'http://127.0.0.1:29324',
    region: 'us-east-1',
    credentials: { accessKeyId: 'wal', secretAccessKey: 'wal' },
  },
  toxiproxy: {
    external: Boolean(env.WAL_TEST_TOXIPROXY),
    api: env.WAL_TEST_TOXIPROXY ?? 'http://127.0.0.1:18474',
    /** name → listen / upstream, created by `services up`. */
    proxies: {
      kafka: { listen: '127.0.0.1:29092', upstream: '127.0.0.1:19096' },
      cassandra: { listen: '127.0.0.1:29042', upstream: '127.0.0.1:19042' },
      sqs: { listen: '127.0.0.1:29324', upstream: '127.0.0.1:19324' },
    },
  },
}
