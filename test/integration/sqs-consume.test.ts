// The consumer on an SQS namespace: visibility kept while a slow apply runs, several targets progressing
// on their own (one paused, one retrying), and a graceful stop that leaves the rest to the next consumer.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer, type TargetServer } from '../helpers/http-target-server.js'
import { deleteQueues, sqsNamespace, writeSqsConfig } from '../helpers/sqs-namespace.js'
import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let server: TargetServer
const prefixes: string[] = []
beforeEach(async () => {
  wal = makeSandbox()
  server = await startTargetServer()
})
afterEach(async () => {
  await server.close()
  wal.cleanup()
  await deleteQueues(prefixes.splice(0))
})

async function namespace(options: Parameters<typeof sqsNamespace>[1] = {}): Promise<void> {
  prefixes.push(await sqsNamespace(wal, options))
}

interface Summary {
  targets: Array<{ target: string; applied: number; retried: number; deadLettered: number; circuitOpened: number; lag: number }>
}

const put = (id: string | number) => ({ op: 'put', table: 't', key: { id }, item: { id } })

describe('wal consume on an SQS namespace', () => {
  it('keeps a message hidden while an apply runs longer than the visibility timeout, so it is applied once', async () => {
    await namespace({ targets: { api: { type: 'http', url: server.url, timeoutMs: 20_000 } }, settings: { visibilityTimeoutSeconds: 5 } })
    server.slow(8000)
    await wal.run(['produce', '-n', 'orders', '-k', 'slow', '-p', '1'])
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets[0]).toMatchObject({ applied: 1, retried: 0 })
    expect(server.received).toHaveLength(1)
  }, 60_000)

  it('applies a message once at a healthy target while another target retries it, and pauses an unreachable one without spending attempts', async () => {
    const outPath = join(wal.dir, 'out.ndjson')
    await namespace({
      targets: {
        api: { type: 'http', url: server.url, timeoutMs: 5000, retry: { initialBackoffMs: 200, jitter: 0 } },
        out: { type: 'file', path: outPath },
      },
    })
    server.failFirst('k1', 2)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2].map((i) => ({ key: `k${i}`, payload: put(i) }))) })
    const summary = JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary
    expect(summary.targets.map((t) => [t.target, t.applied, t.retried, t.deadLettered])).toEqual([
      ['api', 2, 2, 0],
      ['out', 2, 0, 0],
    ])
    expect(jsonLines<{ key: string }>(readFileSync(outPath, 'utf8')).map((e) => e.key).sort()).toEqual(['k1', 'k2'])

    // An unreachable target: paused (circuit open), no attempt spent, nothing dead-lettered, nothing deleted.
    await namespace({ targets: { down: { type: 'http', url: 'http://127.0.0.1:2/apply', timeoutMs: 500, retry: { maxAttempts: 2 } }, store: { type: 'kv' } } })
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((i) => ({ key: `k${i}`, payload: put(i) }))) })
    const child = wal.spawn(['consume', '-n', 'orders', '--json', '--drain-timeout', '1s'])
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await waitFor(() => err.includes('"event":"circuit-open","target":"down"'), { timeoutMs: 30_000 })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    child.kill('SIGTERM')
    await closed
    const stopped = JSON.parse(out) as Summary
    expect(stopped.targets.find((t) => t.target === 'down')).toMatchObject({ applied: 0, deadLettered: 0, retried: 0 })
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
    // The messages were put back at the stop, for when the target is back.
    expect(jsonLines((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)).toHaveLength(3)
  }, 120_000)

  it('--until-idle exits 5 naming a target that stays unreachable for --idle-timeout, and puts its messages back', async () => {
    await namespace({ targets: { down: { type: 'http', url: 'http://127.0.0.1:2/apply', timeoutMs: 500 }, store: { type: 'kv' } } })
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3].map((i) => ({ key: `k${i}`, payload: put(i) }))) })
    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--idle-timeout', '2s'])
    expect(result.code, result.stderr).toBe(5)
    expect(result.stderr).toMatch(/^wal: target "down" made no progress for 2s \(--idle-timeout\) with work left: it is paused: ECONNREFUSED/m)
    expect((JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries).toEqual([])
    // Nothing was deleted: the three are still in the queues for the next run.
    expect(jsonLines((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)).toHaveLength(3)
  }, 120_000)

  it('dead-letters a message addressed to a target the namespace no longer has, instead of dropping it', async () => {
    const queue = await sqsNamespace(wal, { targets: { old: { type: 'kv' }, store: { type: 'kv' } } })
    prefixes.push(queue)
    await wal.run(['produce', '-n', 'orders', '-k', 'k', '--target', 'old', '-p', JSON.stringify(put('k'))])
    writeSqsConfig(wal, queue, { targets: { store: { type: 'kv' } } })
    const result = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
    expect((JSON.parse(result.stdout) as Summary).targets[0]).toMatchObject({ applied: 0 })
    const listed = (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ key: string; target: string; code: string }> }).entries
    expect(listed.map((e) => [e.key, e.target, e.code])).toEqual([['k', 'old', 'WAL_TARGET_UNKNOWN']])
  })

  it('on SIGTERM finishes what is in flight, puts back what was not started and exits 0; the next consumer does the rest', async () => {
    await namespace({ targets: { api: { type: 'http', url: server.url, timeoutMs: 5000 } } })
    server.slow(700)
    await wal.run(['produce', '-n', 'orders'], { input: ndjson(Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, payload: i }))) })
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
    server.slow(0)
    const rest = (JSON.parse((await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])).stdout) as Summary).targets[0]!
    expect(rest.applied + stopped.applied).toBe(60)
    expect(new Set(server.received.map((r) => r.body)).size).toBe(60)
    expect(kvItems(wal.stateDir, 'orders')).toEqual([])
  }, 60_000)
})
