// A broker restart in the middle of a produce stream, on a broker this file starts itself (its own ports
// and data directory): the shared test broker is never stopped. The broker carries a few hundred
// partitions, so that electing their leaders after the restart takes a while.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Kafka, logLevel } from 'kafkajs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { privateBroker, type PrivateBroker } from '../../scripts/services/kafka.js'
import { kafkaNamespace } from '../helpers/kafka-namespace.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Envelope } from '../helpers/wal.js'

/** More runs where there is time for them (e.g. WAL_TEST_RESTART_RUNS=10). */
const RUNS = Math.max(1, Number(process.env.WAL_TEST_RESTART_RUNS ?? 2))

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

let broker: PrivateBroker
let dataDir: string
beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'wal-broker-'))
  broker = privateBroker({ name: `kafka-restart-${process.pid}`, port: await freePort(), controllerPort: await freePort(), dataDir })
  await broker.start()
  const admin = new Kafka({ clientId: 'wal-test', brokers: broker.brokers, logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: 'ballast', numPartitions: 300 }] })
  await admin.disconnect()
}, 300_000)
afterAll(async () => {
  await broker?.stop({ graceMs: 5000 })
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
}, 60_000)

interface Line extends Omit<Partial<Ack>, 'durable'> {
  line: number
  durable: boolean | 'unknown'
}

describe('a Kafka broker restart during a produce stream', () => {
  for (let run = 1; run <= RUNS; run++) {
    it(`loses nothing acked, reports the lines without an answer, and a tail started as the broker is back reads every record (run ${run})`, async () => {
      const wal = makeSandbox()
      try {
        await kafkaNamespace(wal, { partitions: 4, cluster: { brokers: broker.brokers, deliveryTimeoutMs: 60_000 } })
        const input = Array.from({ length: 400 }, (_, i) => ({ key: `k${i % 7}`, payload: { i }, idempotencyKey: `op-${run}-${i}` }))
        const child = wal.spawn(['produce', '-n', 'orders', '--json'])
        let out = ''
        let err = ''
        child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
        child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
        const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
        child.stdin!.write(ndjson(input.slice(0, 200)))
        await waitFor(() => out.split('\n').filter(Boolean).length >= 200, { timeoutMs: 60_000 })
        await broker.stop()
        child.stdin!.write(ndjson(input.slice(200)))
        child.stdin!.end()
        await broker.start()

        // The moment the broker answers again: a tail reads every record, riding out the leader elections.
        const tail = await wal.run(['tail', '-n', 'orders', '--json'])
        expect(tail.stderr).toBe('')
        expect(tail.code).toBe(0)

        const code = await closed
        // 0: the producer rode out the restart; 5: nothing after the named line was written; 6: unknown.
        expect([0, 5, 6], err).toContain(code)
        const lines = jsonLines<Line>(out)
        const acked = lines.filter((l) => l.durable === true)
        expect(acked.length).toBeGreaterThanOrEqual(200)
        // Every line is answered for: acked, or reported as unknown (exit 6), or named as not written (exit 5).
        if (code === 0) expect(acked).toHaveLength(input.length)
        if (code === 6) {
          const unknown = lines.filter((l) => l.durable === 'unknown')
          expect(acked.length + unknown.length).toBe(input.length)
          expect(JSON.parse(err.trim().split('\n').at(-1)!).error.code).toBe('WAL_DURABILITY_UNKNOWN')
        }
        if (code === 5) expect(err).toMatch(/nothing from line \d+ on was written/)

        // Every acked id is in the log, as the tail started at once read it, and as one read afterwards does.
        const inTail = new Set(jsonLines<Envelope>(tail.stdout).map((e) => e.id))
        for (const ack of acked) expect(inTail.has(ack.id!)).toBe(true)
        const after = await wal.run(['tail', '-n', 'orders', '--json'])
        expect(after.code).toBe(0)
        const inLog = new Set(jsonLines<Envelope>(after.stdout).map((e) => e.id))
        for (const ack of acked) expect(inLog.has(ack.id!)).toBe(true)

        // Producing everything again with the same idempotency keys completes the log, once each.
        const again = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(input) })
        expect(again.code, again.stderr).toBe(0)
        const final = await wal.run(['tail', '-n', 'orders', '--json'])
        expect(final.code).toBe(0)
        expect(jsonLines<Envelope>(final.stdout).map((e) => e.idempotencyKey).sort()).toEqual(input.map((m) => m.idempotencyKey).sort())
      } finally {
        wal.cleanup()
      }
    }, 300_000)
  }
})
