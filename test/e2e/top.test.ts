import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { killDaemons, startForegroundDaemon } from '../helpers/daemon.js'
import { openTerminal, type Terminal } from '../helpers/tmux.js'
import { WAL_COMMAND, makeSandbox, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let terminal: Terminal | undefined
beforeEach(async () => {
  wal = makeSandbox()
  // Two namespaces; orders' api target can never be reached (port 9: fetch refuses it, a fatal failure), so its mutations are dead-lettered.
  writeFileSync(
    join(wal.cwd, '.walrc.json'),
    JSON.stringify({
      namespaces: {
        orders: { targets: { api: { type: 'http', url: 'http://127.0.0.1:9/x', retry: { maxAttempts: 1, initialBackoffMs: 10 } } } },
        users: { targets: { store: { type: 'kv' } } },
      },
    }),
  )
  const put = '{"op":"put","table":"t","key":{"id":1},"item":{"id":1}}'
  for (const [ns, key] of [['orders', 'a'], ['orders', 'b'], ['users', 'c']]) expect((await wal.run(['produce', '-n', ns!, '-k', key!, '-p', put])).code).toBe(0)
  expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(8) // dead-lettered during the run
})
afterEach(async () => {
  await killDaemons()
  terminal?.kill()
  terminal = undefined
  wal.cleanup()
})

describe('wal top without a terminal', () => {
  it('prints one snapshot from the backends as JSON with --json: lag, DLQ depth and top errors per target', async () => {
    const result = await wal.run(['top', '--json'])
    expect(result.code).toBe(0)
    const snapshot = JSON.parse(result.stdout) as { source: string; rows: Array<Record<string, unknown>> }
    expect(snapshot.source).toBe('backends')
    expect(snapshot.rows).toEqual([
      expect.objectContaining({ namespace: 'orders', target: 'api', lag: 0, dlqDepth: 2, throughputPerSec: null, topErrors: [expect.objectContaining({ count: 2 })] }),
      expect.objectContaining({ namespace: 'users', target: 'store', lag: 1, dlqDepth: 0, topErrors: [] }),
    ])
  })

  it('prints one snapshot as a table when piped, and only the namespace asked for with -n', async () => {
    const result = await wal.run(['top', '-n', 'users'])
    expect(result.code).toBe(0)
    const lines = result.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^\S+Z from the backends$/)
    expect(lines[1]).toMatch(/^NAMESPACE\s+TARGET/)
    expect(lines.slice(2)).toEqual([expect.stringMatching(/^users\s+store\s+-\s+idle\s+-\s+1\s/)])
    expect(result.stdout).not.toContain('\u001B')
  })
})

describe('wal top with a daemon running', () => {
  it("reads the daemon's status: its shards, their state and circuit, and what it applies", async () => {
    await startForegroundDaemon(wal)
    type Row = { namespace: string; target: string; shard: string; state: string; circuit: string; lag: number; dlqDepth: number }
    const rows = await waitFor(async () => {
      const snapshot = JSON.parse((await wal.run(['top', '--json'])).stdout) as { source: string; rows: Row[] }
      expect(snapshot.source).toBe('daemon')
      // The daemon applies users' pending mutation: its lag falls to 0.
      return snapshot.rows.some((r) => r.namespace === 'users' && r.lag === 0) ? snapshot.rows : null
    })
    expect(rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ namespace: 'orders', target: 'api', shard: 'auto', state: 'running', circuit: 'closed', dlqDepth: 2 }),
        expect.objectContaining({ namespace: 'users', target: 'store', state: 'running', lag: 0 }),
      ]),
    )
  })
})

describe('wal top with a daemon running, live columns', () => {
  it('in-flight counts the applies under way now, and circuit shows the breaker state now', async () => {
    const { createServer } = await import('node:http')
    // A target that holds every request until the test lets it answer.
    const held: Array<import('node:http').ServerResponse> = []
    const server = createServer((req, res) => {
      req.resume()
      held.push(res)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as import('node:net').AddressInfo).port
    try {
      writeFileSync(
        join(wal.cwd, '.walrc.json'),
        JSON.stringify({
          namespaces: {
            slow: { targets: { api: { type: 'http', url: `http://127.0.0.1:${port}/x`, timeoutMs: 60_000 } } },
            // Nothing listens on port 2: connection refused, the target is paused (breaker open).
            down: { targets: { api: { type: 'http', url: 'http://127.0.0.1:2/x' } } },
          },
          daemon: { port: 0 },
        }),
      )
      const put = '{"op":"put","table":"t","key":{"id":1},"item":{"id":1}}'
      for (const [ns, key] of [['slow', 'a'], ['slow', 'b'], ['down', 'c']]) expect((await wal.run(['produce', '-n', ns!, '-k', key!, '-p', put])).code).toBe(0)
      await startForegroundDaemon(wal)
      type Row = { namespace: string; target: string; inFlight: number | null; circuit: string }
      const rowOf = async (namespace: string): Promise<Row | undefined> =>
        (JSON.parse((await wal.run(['top', '--json'])).stdout) as { rows: Row[] }).rows.find((r) => r.namespace === namespace)
      await waitFor(async () => held.length === 2 && (await rowOf('slow'))?.inFlight === 2, { timeoutMs: 45_000 })
      expect(await rowOf('slow')).toMatchObject({ circuit: 'closed' })
      const down = await waitFor(async () => {
        const row = await rowOf('down')
        return row && /^(open|half-open) \(\d+× opened\)$/.test(row.circuit) ? row : undefined
      }, { timeoutMs: 45_000 })
      expect(down!.inFlight === 0 || down!.inFlight === 1).toBe(true)
      for (const res of held.splice(0)) res.end()
      await waitFor(async () => (await rowOf('slow'))?.inFlight === 0, { timeoutMs: 45_000 })
      // The table shows them too.
      expect((await wal.run(['top', '-n', 'down'])).stdout).toMatch(/down\s+api\s.*\s(open|half-open) \(\d+× opened\)\s/)
    } finally {
      for (const res of held) res.end()
      server.closeAllConnections()
      server.close()
    }
  })
})

describe('wal top on a terminal (tmux)', () => {
  it('refreshes live; s sorts, / filters by namespace, p pauses, q quits', async () => {
    terminal = openTerminal({ name: 'top', command: [...WAL_COMMAND, 'top', '--interval', '300ms'], env: wal.env, cwd: wal.cwd, columns: 160, rows: 20 })
    const t = terminal
    // Sorted by lag: users (1) above orders (0).
    const first = await t.waitForScreen(/users\s+store[\s\S]*orders\s+api/)
    expect(first).toContain('sort: lag')
    expect(first).toMatch(/orders\s+api\s.*\s2\s+fatal\/HTTP_PORT_BLOCKED×2/)
    t.keys('s')
    await t.waitForScreen('sort: throughput')
    t.keys('s')
    await t.waitForScreen('sort: dlq')
    await t.waitForScreen(/orders\s+api[\s\S]*users\s+store/)
    t.keys('/')
    await t.waitForScreen('namespace (enter')
    t.keys('user', { literal: true })
    await t.waitForScreen('): user')
    t.keys('Enter')
    const filtered = await t.waitForScreen('namespace: user')
    expect(filtered).not.toMatch(/orders\s+api/)
    t.keys('p')
    await t.waitForScreen('PAUSED')
    t.keys('q')
    await t.waitForScreen('EXIT=0')
  })
})
