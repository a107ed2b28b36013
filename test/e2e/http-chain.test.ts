// A namespace whose HTTP target is another wal daemon's write API: the next hop of a chain.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { killDaemons, post, startForegroundDaemon } from '../helpers/daemon.js'
import { jsonLines, makeSandbox, waitFor, type Ack, type Envelope, type Sandbox } from '../helpers/wal.js'

let first: Sandbox
let second: Sandbox
beforeEach(() => {
  first = makeSandbox()
  second = makeSandbox()
})
afterEach(async () => {
  await killDaemons()
  first.cleanup()
  second.cleanup()
})

const TOKEN = 'a-token-for-the-second-hop'

interface Explained {
  targets: Array<{ status: string; events: Array<{ event: string; code?: string; attempt?: number }> }>
}

async function explain(wal: Sandbox, id: string): Promise<Explained | null> {
  const result = await wal.run(['explain', id, '--json'])
  return result.code === 0 ? (JSON.parse(result.stdout) as Explained) : null
}

describe('an HTTP target pointed at the write API of another wal daemon', () => {
  it('passes each mutation on once — id, key, headers, payload bytes and createdAt — in order, although the daemon was frozen (SIGSTOP) and the target retried every request it timed out on', async () => {
    writeFileSync(join(second.cwd, '.walrc.json'), JSON.stringify({ daemon: { port: 0, token: TOKEN }, namespaces: { hop2: { partitions: 2, targets: { store: { type: 'kv' } } } } }))
    const daemon = await startForegroundDaemon(second)
    writeFileSync(
      join(first.cwd, '.walrc.json'),
      JSON.stringify({
        namespaces: {
          hop1: {
            partitions: 2,
            retry: { maxAttempts: 50, initialBackoffMs: 50, maxBackoffMs: 200, jitter: 0 },
            // A URL of a wal write API: the body is the envelope (body: envelope is the default there).
            targets: { next: { type: 'http', url: `${daemon.url}/v1/namespaces/hop2/mutations`, timeoutMs: 500, headers: { authorization: `Bearer ${TOKEN}` } } },
          },
        },
      }),
    )
    const lines = [
      ...Array.from({ length: 4 }, (_, seq) => ({ key: 'k', payload: { seq, text: 'é\u2028 "q"' }, headers: { source: 'crm', 'x-ü': 'naïve ☃' } })),
      { key: 'k', payload: Buffer.from([0, 1, 0xfe, 0xff]).toString('base64'), payloadEncoding: 'base64', headers: { 'not a token': 'v' } },
    ]
    const produced = await first.run(['produce', '-n', 'hop1', '--json'], { input: lines.map((l) => JSON.stringify(l)).join('\n') + '\n' })
    expect(produced.code, produced.stderr).toBe(0)
    const ids = jsonLines<Ack>(produced.stdout).map((a) => a.id)

    process.kill(daemon.pid, 'SIGSTOP')
    const consumer = first.spawn(['consume', '-n', 'hop1'])
    try {
      // Two requests for the first mutation sit unanswered at the frozen daemon: both timed out.
      await waitFor(async () => (await explain(first, ids[0]!))?.targets[0]?.events.some((e) => e.code === 'TIMEOUT' && (e.attempt ?? 0) >= 2), { timeoutMs: 60_000, intervalMs: 200 })
    } finally {
      process.kill(daemon.pid, 'SIGCONT')
    }
    await waitFor(async () => (await explain(first, ids.at(-1)!))?.targets[0]?.status === 'applied', { timeoutMs: 90_000, intervalMs: 200 })
    consumer.kill('SIGTERM')

    const tail = await second.run(['tail', '-n', 'hop2', '--json'])
    expect(tail.code, tail.stderr).toBe(0)
    const hop2 = jsonLines<Envelope>(tail.stdout)
    const hop1 = jsonLines<Envelope>((await first.run(['tail', '-n', 'hop1', '--json'])).stdout)
    const travels = (e: Envelope): unknown[] => [e.id, e.key, e.headers, e.payload, e.payloadEncoding, e.createdAt]
    expect(hop2.map(travels)).toEqual(hop1.map(travels))
    // The target sends the mutation id as Idempotency-Key; the daemon takes it as the idempotency key.
    expect(hop2.map((e) => e.idempotencyKey)).toEqual(ids)
  }, 180_000)

  it('takes a write request\'s Idempotency-Key header as the idempotency key of mutations that have none (a batch\'s suffixed by index), and refuses an empty one', async () => {
    writeFileSync(join(second.cwd, '.walrc.json'), JSON.stringify({ daemon: { port: 0, token: TOKEN }, namespaces: { hop2: { partitions: 2, targets: { store: { type: 'kv' } } } } }))
    const daemon = await startForegroundDaemon(second)
    const url = `${daemon.url}/v1/namespaces/hop2/mutations`
    const auth = { authorization: `Bearer ${TOKEN}` }
    const once = await post(url, { key: 'a', payload: 1 }, { ...auth, 'idempotency-key': 'req-1' })
    const again = await post(url, { key: 'a', payload: 1 }, { ...auth, 'idempotency-key': 'req-1' })
    expect([once.status, again.status]).toEqual([200, 200])
    expect(again.body).toMatchObject({ id: once.body.id, duplicate: true })
    const own = await post(url, { key: 'a', payload: 2, idempotencyKey: 'its-own' }, { ...auth, 'idempotency-key': 'req-2' })
    const batch = await post(url, [{ key: 'b', payload: 3 }, { key: 'b', payload: 4 }], { ...auth, 'idempotency-key': 'req-3' })
    const batchAgain = await post(url, [{ key: 'b', payload: 3 }, { key: 'b', payload: 4 }], { ...auth, 'idempotency-key': 'req-3' })
    expect([own.status, batch.status, batchAgain.status]).toEqual([200, 200, 200])
    expect((batchAgain.body.results as Array<{ duplicate?: boolean }>).map((r) => r.duplicate)).toEqual([true, true])
    const empty = await post(url, { key: 'a', payload: 5 }, { ...auth, 'idempotency-key': '' })
    expect(empty.status).toBe(400)
    expect(empty.body.message).toMatch(/Idempotency-Key header is empty/)

    const hop2 = jsonLines<Envelope>((await second.run(['tail', '-n', 'hop2', '--json'])).stdout)
    expect(hop2.map((e) => [e.payload, e.idempotencyKey]).sort()).toEqual([[1, 'req-1'], [2, 'its-own'], [3, 'req-3/0'], [4, 'req-3/1']].sort())
  }, 120_000)
})
