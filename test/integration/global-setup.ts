/**
 * Starts the real servers the integration suites need (once per test run, reused by every file), unless
 * they are already up or the environment points at servers run elsewhere. Fails the run with the reason
 * — a missing Java, Maven or Go, or a server that would not start, with its log tail — never skips.
 */
import { up } from '../../scripts/services/index.js'
import { ServiceError } from '../../scripts/services/lib.js'

export default async function setup(): Promise<void> {
  try {
    await up()
  } catch (error) {
    if (error instanceof ServiceError) {
      throw new Error(
        `the integration tests need real Kafka, Cassandra, ElasticMQ and Toxiproxy, and they could not be started:\n${error.message}\n` +
          'Start them with `node scripts/services.js up` (needs Java 17, Maven and Go), or point WAL_TEST_* at running servers (README: Integration tests).',
      )
    }
    throw error
  }
}
