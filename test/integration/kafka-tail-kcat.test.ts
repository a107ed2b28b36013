// wal tail reads a Kafka namespace's topic as kcat does: same keys, payloads and order per partition.
import { spawnSync } from 'node:child_process'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { deleteTopics, kafkaNamespace } from '../helpers/kafka-namespace.js'
import { jsonLines, makeSandbox, ndjson, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const topics: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

function kcat(args: readonly string[]): string {
  const result = spawnSync('kcat', ['-b', endpoints.kafka.brokers[0]!, '-C', '-e', '-q', ...args], { encoding: 'utf8', timeout: 60_000 })
  expect(result.error, 'kcat must be installed (apt-get install -y kcat)').toBeUndefined()
  expect(result.status, result.stderr).toBe(0)
  return result.stdout
}

/** Lines grouped by their leading partition number, each group in its order. */
function byPartition(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const line of text.split('\n').filter(Boolean)) {
    const [p, ...rest] = line.split(' ')
    out.set(p!, [...(out.get(p!) ?? []), rest.join(' ')])
  }
  return new Map([...out].sort(([a], [b]) => Number(a) - Number(b)))
}

describe('wal tail on a Kafka topic, against kcat', () => {
  it('prints the same keys and payloads in the same order per partition, for the whole topic and its last N', async () => {
    const topic = await kafkaNamespace(wal, { partitions: 3 })
    topics.push(topic)
    const lines = Array.from({ length: 40 }, (_, i) => ({ key: `user-${i % 9}`, payload: { i, op: i % 4 === 0 ? 'delete' : 'put' } }))
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson(lines) })).code).toBe(0)

    const ours = await wal.run(['tail', '-n', 'orders', '--format', '%p %k %s\\n'])
    expect(ours.code, ours.stderr).toBe(0)
    const theirs = kcat(['-t', topic, '-f', '%p %k %s\\n'])
    expect(byPartition(ours.stdout)).toEqual(byPartition(theirs))
    expect(ours.stdout.trim().split('\n')).toHaveLength(40)

    // P:-N is kcat's -p P -o -N.
    for (const p of [0, 1, 2]) {
      const last = await wal.run(['tail', '-n', 'orders', '--from', `${p}:-3`, '--format', '%k %s %o\\n'])
      expect(last.stdout).toBe(kcat(['-t', topic, '-p', String(p), '-o', '-3', '-f', '%k %s %o\\n']))
    }

    // --from -5: the 5 latest of the whole topic, each in its partition's order.
    const last5 = byPartition((await wal.run(['tail', '-n', 'orders', '--from', '-5', '--format', '%p %k %s\\n'])).stdout)
    const all = byPartition(theirs)
    expect([...last5.values()].flat()).toHaveLength(5)
    for (const [p, records] of last5) expect(all.get(p)!.slice(-records.length)).toEqual(records)

    // --where: what kcat prints, filtered by hand.
    const deletes = await wal.run(['tail', '-n', 'orders', '--where', 'payload.op == "delete"', '--format', '%p %k %s\\n'])
    const expected = new Map<string, string[]>()
    for (const [p, records] of all) {
      const matching = records.filter((r) => r.includes('"op":"delete"'))
      if (matching.length > 0) expected.set(p, matching)
    }
    expect(byPartition(deletes.stdout)).toEqual(expected)
  })
})

describe('records kcat writes into a Kafka namespace', () => {
  it('reads a wal-not-before header in ISO 8601 as well as in epoch milliseconds, as the other time headers, instead of quarantining the record', async () => {
    const topic = await kafkaNamespace(wal, { partitions: 1 })
    topics.push(topic)
    const send = (key: string, id: string, notBefore: string): void => {
      const op = JSON.stringify({ op: 'put', table: 't', key: { id: key }, item: { id: key } })
      const result = spawnSync('kcat', ['-b', endpoints.kafka.brokers[0]!, '-P', '-t', topic, '-K', '\t', '-H', `wal-id=${id}`, '-H', `wal-not-before=${notBefore}`], { input: `${key}\t${op}\n`, encoding: 'utf8', timeout: 60_000 })
      expect(result.status, result.stderr).toBe(0)
    }
    send('iso', '01M80K6XFDG62PY7DFWNXXTEA1', '2026-01-02T03:04:05.678Z')
    send('millis', '01M80K6XFDG62PY7DFWNXXTEA2', String(Date.parse('2026-01-02T03:04:05.678Z')))
    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(tail.code, tail.stderr).toBe(0)
    const records = jsonLines<Envelope & { error?: string }>(tail.stdout)
    expect(records.map((r) => [r.key, r.error, r.notBefore])).toEqual([
      ['iso', undefined, '2026-01-02T03:04:05.678Z'],
      ['millis', undefined, '2026-01-02T03:04:05.678Z'],
    ])
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect(consumed.code, consumed.stderr).toBe(0)
    expect(JSON.parse(consumed.stdout).targets[0]).toMatchObject({ applied: 2, deadLettered: 0 })
  })
})
