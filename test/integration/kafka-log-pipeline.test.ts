// The consumer pipeline's behaviours from the embedded log's end-to-end suite, on a Kafka namespace.
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer, type TargetServer } from '../helpers/http-target-server.js'
import { deleteTopics, kafkaNamespace } from '../helpers/kafka-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let server: TargetServer
const topics: string[] = []
beforeEach(async () => {
  wal = makeSandbox()
  server = await startTargetServer()
})
afterEach(async () => {
  await server.close()
  wal.cleanup()
  await deleteTopics(topics.splice(0))
})

async function namespace(options: Parameters<typeof kafkaNamespace>[1] = {}): Promise<void> {
  topics.push(await kafkaNamespace(wal, options))
}

interface Summary {
  targets: Array<{ target: string; applied: number; deadLettered: number; circuitOpened: number; lag: number }>
}

const put = (id: string | number) => ({ op: 'put', table: 't', key: { id }, item: { id } })

describe('the pipeline on a Kafka namespace', () => {
  it('rejects bad lines with their numbers and still writes the good ones around them (exit 4)', async () => {
    await namespace()
    const input = ['{"key":"a","payload":1}', '{not json', '{"key":"b","payload":2,"colour":"red"}', '{"key":"c","payload":3}'].join('\n') + '\n'
    const result = await wal.run(['produce', '-n', 'orders', '--json'], { input })
    expect(result.code).toBe(4)
    const lines = jsonLines<Ack & { error?: { code: string } }>(result.stdout)
    expect(lines.map((l) => [l.line, l.durable, l.error?.code])).toEqual([
      [1, true, undefined],
      [2, false, 'WAL_RECORD_MALFORMED'],
      [3, false, 'WAL_RECORD_INVALID'],
      [4, true, undefined],
    ])
    const tailed = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(tailed.map((e) => e.key).sort()).toEqual(['a', 'c'])
  })

  it('pauses an unreachable target without spending attempts, while a healthy target goes on', async () => {
    await namespace({ targets: { down: { type: 'http', url: 'http://127.0.0.1:2/apply', timeoutMs: 500, retry: { maxAttempts: 2 } }, store: { type: 'kv' } } })
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((i) => ({ key: `k${i}`, payload: put(i) }))) })
    const child = wal.spawn(['consume', '-n', 'orders', '--json', '--drain-timeout', '1s'])
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === 3, { timeoutMs: 30_000 })
    await waitFor(() => err.includes('"event":"circuit-open","target":"down"'))
    child.kill('SIGTERM')
    expect(await closed).toBe(0)
    const summary = JSON.parse(out) as Summary
    expect(summary.targets.find((t) => t.target === 'down')).toMatchObject({ applied: 0, deadLettered: 0 })
    // Nothing was committed past for the paused target: all three still wait for it.
    const show = JSON.parse((await wal.run(['ns', 'show', 'orders', '--json'])).stdout) as { consumers: Array<{ target: string; lag: number }> }
    expect(show.consumers.find((c) => c.target === 'down')!.lag).toBe(3)
    expect(summary.targets.find((t) => t.target === 'store')).toMatchObject({ applied: 3, lag: 0 })
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
  })

  it('delivers a target override only to that target', async () => {
    const outPath = join(wal.dir, 'audit.ndjson')
    await namespace({ targets: { store: { type: 'kv' }, audit: { type: 'file', path: outPath } } })
    await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', JSON.stringify(put('a'))])
    await wal.run(['produce', '-n', 'orders', '-k', 'b', '--target', 'audit', '-p', JSON.stringify(put('b'))])
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets.map((t) => [t.target, t.applied, t.lag])).toEqual([
      ['store', 1, 0],
      ['audit', 2, 0],
    ])
    expect(kvItems(wal.stateDir, 'orders').map((r) => JSON.parse(r.item!).id)).toEqual(['a'])
  })

  it('on SIGTERM finishes what is in flight, commits to the group and exits 0; the next consumer does the rest', async () => {
    await namespace({ targets: { api: { type: 'http', url: server.url, timeoutMs: 5000 } } })
    server.slow(700)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, payload: i }))) })
    const child = wal.spawn(['consume', '-n', 'orders', '--json', '--concurrency', '4'])
    let out = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.resume()
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await waitFor(() => server.received.length >= 4)
    child.kill('SIGTERM')
    expect(await closed).toBe(0)
    const stopped = (JSON.parse(out) as Summary).targets[0]!
    expect(stopped.applied).toBe(server.received.length)
    expect(stopped.lag).toBe(100 - stopped.applied)
    server.slow(0)
    const rest = (JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary).targets[0]!
    expect(rest.applied + stopped.applied).toBe(100)
    expect(new Set(server.received.map((r) => r.body)).size).toBe(100)
  })

  it('keeps to --rate', async () => {
    await namespace()
    await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, payload: put(i) }))) })
    const started = Date.now()
    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--rate', '20/s', '--json'])
    expect((JSON.parse(result.stdout) as Summary).targets[0]!.applied).toBe(60)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900)
  })
})
