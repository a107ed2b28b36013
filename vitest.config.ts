import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // The default output, then the 10 slowest files, so growth of the suite is visible.
    reporters: ['default', './test/reporters/slowest-files.ts'],
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.{ts,tsx}'] } },
      // End-to-end: the built `wal` binary, run as a user runs it (build first: npm test does).
      { test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
      // Against real Kafka, Cassandra, ElasticMQ and Toxiproxy, started once per run by the global setup.
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          setupFiles: ['scripts/services/quiet-kafkajs.js'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // The servers are shared: one file at a time keeps a 2-core machine from timing out.
          fileParallelism: false,
        },
      },
    ],
  },
})
