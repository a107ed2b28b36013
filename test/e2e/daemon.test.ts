import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { startTargetServer } from '../helpers/http-target-server.js'
import { authHeaders, daemonFile, daemonState, isAlive, killDaemons, pidFileExists, post, startForegroundDaemon, useDaemonToken } from '../helpers/daemon.js'
import { deadLetters, kvItems } from '../helpers/state.js'
import { makeSandbox, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let detachedPid: number | undefined
beforeEach(() => {
  wal = makeSandbox()
  detachedPid = undefined
})
afterEach(async () => {
  await killDaemons(detachedPid)
  wal.cleanup()
})

function configure(namespaces: Record<string, unknown>, daemon: Record<string, unknown> = {}): void {
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces, daemon: { port: 0, leaseTtlMs: 2000, drainTimeoutMs: 5000, ...daemon } }))
}

const put = (id: string, item: Record<string, unknown>) => ({ op: 'put', table: 't', key: { id }, item: { id, ...item } })
const itemsOf = (namespace: string) => Object.fromEntries(kvItems(wal.stateDir, namespace).map((r) => [JSON.parse(r.pk)[0][1] as string, JSON.parse(r.item!) as Record<string, unknown>]))

interface Status {
  pid: number
  uptimeMs: number
  consumers: Array<{ namespace: string; target: string; state: string; applied: number; lag: number; startedAt: string; dlqDepth: number; partitions: number[]; restarts: number; lastError: string | null }>
}

describe('wal daemon start|status|reload|stop', () => {
  it('runs the configured consumers detached, takes writes over HTTP and from the CLI, reloads a new namespace and drains on stop', async () => {
    // A drain deadline far above what draining takes: stop must return when drained, not at the deadline.
    const daemon = { drainTimeoutMs: 30_000 }
    configure({ orders: { partitions: 4, targets: { store: { type: 'kv' } } } }, daemon)
    const started = await wal.run(['daemon', 'start', '--json'])
    expect(started.code, started.stderr).toBe(0)
    const { pid, url } = JSON.parse(started.stdout) as { pid: number; url: string }
    useDaemonToken(wal, url)
    detachedPid = pid
    expect(isAlive(pid)).toBe(true)

    // A second start refuses, naming the running one.
    const again = await wal.run(['daemon', 'start'])
    expect(again.code).toBe(2)
    expect(again.stderr).toContain(`already running`)
    expect(again.stderr).toContain(`pid ${pid}`)

    const viaHttp = await post(`${url}/v1/namespaces/orders/mutations`, { key: 'a', payload: put('a', { from: 'http' }) })
    expect(viaHttp.status).toBe(200)
    expect(viaHttp.body).toMatchObject({ durable: true, namespace: 'orders', message: 'durable' })
    const viaCli = await wal.run(['produce', '-n', 'orders', '-k', 'b', '-p', JSON.stringify(put('b', { from: 'cli' }))])
    expect(viaCli.code).toBe(0)
    await waitFor(() => Object.keys(itemsOf('orders')).length === 2)
    expect(itemsOf('orders')).toEqual({ a: { id: 'a', from: 'http' }, b: { id: 'b', from: 'cli' } })

    const status = await waitFor<Status | null>(async () => {
      const s = JSON.parse((await wal.run(['daemon', 'status', '--json'])).stdout) as Status
      return s.consumers[0]?.applied === 2 && s.consumers[0].lag === 0 ? s : null
    }).then((s) => s!)
    expect(status.pid).toBe(pid)
    expect(status.consumers).toEqual([expect.objectContaining({ namespace: 'orders', target: 'store', state: 'running', partitions: [0, 1, 2, 3], dlqDepth: 0 })])
    const text = await wal.run(['daemon', 'status'])
    expect(text.stdout).toMatch(/orders\s+store\s+auto\s+running\s+0,1,2,3\s+2\s/)

    // Reload with a new namespace: it starts consuming; the unchanged consumer is left alone.
    configure({ orders: { partitions: 4, targets: { store: { type: 'kv' } } }, emails: { partitions: 2, targets: { outbox: { type: 'kv' } } } }, daemon)
    const reload = await wal.run(['daemon', 'reload', '--json'])
    expect(reload.code, reload.stderr).toBe(0)
    expect(JSON.parse(reload.stdout)).toMatchObject({ ok: true, added: ['emails/outbox'], removed: [], changed: [], unchanged: ['orders/store'] })
    expect((await post(`${url}/v1/namespaces/emails/mutations`, [{ key: 'm1', payload: put('m1', { to: 'ada' }) }, { key: 'm2', payload: put('m2', { to: 'bob' }) }])).body).toMatchObject({
      durable: true,
      message: '2 mutations durable',
    })
    await waitFor(() => Object.keys(itemsOf('emails')).length === 2)
    const after = JSON.parse((await wal.run(['daemon', 'status', '--json'])).stdout) as Status
    expect(after.consumers.map((c) => `${c.namespace}/${c.target}`)).toEqual(['emails/outbox', 'orders/store'])
    expect(after.consumers.find((c) => c.namespace === 'orders')!.startedAt).toBe(status.consumers[0]!.startedAt)

    // logs -f follows the log file until interrupted.
    const follow = wal.spawn(['daemon', 'logs', '-f'])
    let followed = ''
    follow.stdout!.setEncoding('utf8').on('data', (d: string) => (followed += d))
    const followExit = new Promise<number | null>((resolve) => follow.on('exit', (code) => resolve(code)))
    await waitFor(() => followed.includes('"event":"reloaded"'))
    const stopping = Date.now()
    const stopped = await wal.run(['daemon', 'stop', '--json'])
    expect(stopped.code, stopped.stderr).toBe(0)
    expect(JSON.parse(stopped.stdout)).toMatchObject({ running: true, pid, killed: false })
    expect(Date.now() - stopping).toBeLessThan(daemon.drainTimeoutMs / 2)
    await waitFor(() => followed.includes('"event":"stopped"'))
    follow.kill('SIGINT')
    expect(await followExit).toBe(0)
    expect(isAlive(pid)).toBe(false)
    expect(pidFileExists(wal)).toBe(false)
    expect(existsSync(daemonFile(wal, 'daemon.json'))).toBe(false)
    // It drained: its log says so, and no lag is left for the next consumer.
    const logs = await wal.run(['daemon', 'logs'])
    expect(logs.stdout).toContain('"event":"consumer-stopped"')
    expect(logs.stdout).toContain('"drained":true')
    expect(logs.stdout).toContain('"event":"stopped"')
    const status2 = await wal.run(['daemon', 'status'])
    expect(status2.code).toBe(7)
    expect((await wal.run(['daemon', 'stop'])).stdout).toContain('no wal daemon was running')
  })
})

describe('wal daemon reload', () => {
  it('rejects an invalid config, says why, and keeps running the previous one', async () => {
    configure({ orders: { partitions: 2, targets: { store: { type: 'kv' } } } })
    const daemon = await startForegroundDaemon(wal)
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 2, targets: { store: { type: 'kv', pth: 'x' } } } }, daemon: { port: 0 } }))
    const reload = await wal.run(['daemon', 'reload'])
    expect(reload.code).toBe(3)
    expect(reload.stderr).toContain('config rejected, still running the previous one')
    expect(reload.stderr).toContain('namespaces.orders.targets.store.pth')
    expect(daemon.events('reload-rejected')).toHaveLength(1)
    // SIGHUP does the same, and says so in the log.
    daemon.child.kill('SIGHUP')
    await waitFor(() => daemon.events('reload-rejected').length === 2)
    // Still consuming with the old config.
    expect((await post(`${daemon.url}/v1/namespaces/orders/mutations`, { key: 'x', payload: put('x', {}) })).status).toBe(200)
    await waitFor(() => itemsOf('orders').x)
    const status = (await (await fetch(`${daemon.url}/v1/status`, { headers: authHeaders(daemon.url) })).json()) as Status & { lastReload: { ok: boolean; message: string } }
    expect(status.consumers).toEqual([expect.objectContaining({ namespace: 'orders', state: 'running' })])
    expect(status.lastReload).toMatchObject({ ok: false })
    expect(await daemon.stop()).toBe(0)
    expect(pidFileExists(wal)).toBe(false)
    expect(daemonState(wal)).toBeNull()
  })
})

describe('wal daemon run with a file target on stdout', () => {
  it('refuses to start (exit 3): its log is written there', async () => {
    configure({ orders: { targets: { screen: { type: 'file', path: '-' } } } })
    const run = await wal.run(['daemon', 'run'])
    expect(run.code).toBe(3)
    expect(run.stderr).toContain('target "screen" of namespace "orders" writes to stdout (path "-"), where the daemon writes its log')
    expect(run.stdout).toBe('')
  })
})

describe('wal daemon reload, valid', () => {
  it('drains and stops removed consumers, restarts changed ones, and leaves the others alone', async () => {
    const first = join(wal.dir, 'first.ndjson')
    const second = join(wal.dir, 'second.ndjson')
    configure({ orders: { partitions: 2, targets: { store: { type: 'kv' }, audit: { type: 'file', path: first } } }, emails: { targets: { outbox: { type: 'kv' } } } })
    const daemon = await startForegroundDaemon(wal)
    const statusOf = async () => (await (await fetch(`${daemon.url}/v1/status`, { headers: authHeaders(daemon.url) })).json()) as Status
    await waitFor(async () => (await statusOf()).consumers.every((c) => c.state === 'running'))
    const before = await statusOf()
    configure({ orders: { partitions: 2, targets: { store: { type: 'kv' }, audit: { type: 'file', path: second } } } })
    const reload = await wal.run(['daemon', 'reload'])
    expect(reload.code, reload.stderr).toBe(0)
    expect(reload.stdout).toContain('0 consumer(s) added, 1 removed, 1 restarted, 1 unchanged')
    expect(daemon.events('consumer-stopped').map((e) => [`${e.namespace}/${e.target}`, e.drained]).sort()).toEqual([['emails/outbox', true], ['orders/audit', true]])
    expect(daemon.events('consumer-restarted').map((e) => e.target)).toEqual(['audit'])
    const after = await statusOf()
    expect(after.consumers.map((c) => `${c.namespace}/${c.target}`)).toEqual(['orders/audit', 'orders/store'])
    expect(after.consumers.find((c) => c.target === 'store')!.startedAt).toBe(before.consumers.find((c) => c.target === 'store')!.startedAt)
    // The restarted target writes where the new config says.
    expect((await post(`${daemon.url}/v1/namespaces/orders/mutations`, { key: 'k', payload: put('k', {}) })).status).toBe(200)
    await waitFor(() => existsSync(second) && readFileSync(second, 'utf8').includes('"key":"k"'))
    expect(await daemon.stop()).toBe(0)
  })
})

describe('wal daemon with no config', () => {
  it('consumes every namespace that has a log, also one first produced while it runs', async () => {
    await wal.run(['produce', '-k', 'a', '-p', JSON.stringify(put('a', {}))])
    const daemon = await startForegroundDaemon(wal)
    await waitFor(() => itemsOf('default').a)
    const cli = await wal.run(['produce', '-n', 'fresh', '-k', 'b', '-p', JSON.stringify(put('b', {}))])
    expect(cli.code).toBe(0)
    await waitFor(() => itemsOf('fresh').b)
    expect((await post(`${daemon.url}/v1/namespaces/viahttp/mutations`, { key: 'c', payload: put('c', {}) })).status).toBe(200)
    await waitFor(() => itemsOf('viahttp').c)
    // The log line can reach our end of the pipe after the item reached the store: wait for it too.
    await waitFor(() => daemon.events('consumer-started').length >= 3)
    expect(daemon.events('consumer-started').map((e) => e.namespace)).toEqual(['default', 'fresh', 'viahttp'])
    expect(await daemon.stop()).toBe(0)
  })
})

describe('a daemon consumer that fails', () => {
  it('is reported and started again with backoff, while the other consumers go on', async () => {
    // A kv target whose file is a directory cannot be opened.
    configure({ orders: { partitions: 2, targets: { good: { type: 'kv' }, broken: { type: 'kv', path: wal.dir } } } })
    const daemon = await startForegroundDaemon(wal)
    await waitFor(() => daemon.events('consumer-failed').length >= 2)
    const [first, second] = daemon.events('consumer-failed')
    expect(first).toMatchObject({ level: 50, namespace: 'orders', target: 'broken', retryInMs: 1000 })
    expect(second).toMatchObject({ retryInMs: 2000 })
    expect((await post(`${daemon.url}/v1/namespaces/orders/mutations`, { key: 'k', payload: put('k', {}) })).status).toBe(200)
    await waitFor(() => itemsOf('orders').k)
    const status = (await (await fetch(`${daemon.url}/v1/status`, { headers: authHeaders(daemon.url) })).json()) as Status
    const broken = status.consumers.find((c) => c.target === 'broken')!
    expect(broken).toMatchObject({ state: 'failed', lastError: expect.any(String) })
    expect(broken.restarts).toBeGreaterThanOrEqual(2)
    expect(status.consumers.find((c) => c.target === 'good')).toMatchObject({ state: 'running', applied: 1 })
    expect(await daemon.stop()).toBe(0)
  })
})

describe('wal daemon run, stopped', () => {
  it('gives up on applies that outlast the drain deadline, exits 0 in time, and the next daemon applies them', async () => {
    const server = await startTargetServer()
    try {
      configure({ orders: { partitions: 1, targets: { api: { type: 'http', url: server.url, timeoutMs: 30_000 } } } }, { drainTimeoutMs: 500 })
      server.slow(20_000)
      const daemon = await startForegroundDaemon(wal)
      expect((await post(`${daemon.url}/v1/namespaces/orders/mutations`, { key: 'slow', payload: 1 })).status).toBe(200)
      await waitFor(() => server.received.length === 1)
      const stoppingMs = Date.now()
      expect(await daemon.stop()).toBe(0)
      expect(Date.now() - stoppingMs).toBeLessThan(10_000)
      expect(daemon.events('consumer-stopped')).toEqual([expect.objectContaining({ namespace: 'orders', target: 'api', drained: false })])
      expect(pidFileExists(wal)).toBe(false)

      // Not committed, so redone: the endpoint sees the same mutation again (same Idempotency-Key).
      server.slow(0)
      const next = await startForegroundDaemon(wal)
      await waitFor(() => server.received.length === 2)
      expect(server.received[1]!.idempotencyKey).toBe(server.received[0]!.idempotencyKey)
      expect(await next.stop()).toBe(0)
    } finally {
      await server.close()
    }
  })
})

describe('wal daemon stop', () => {
  it('kills a daemon that does not drain within --timeout, and removes its pid file', async () => {
    const server = await startTargetServer()
    try {
      configure({ orders: { partitions: 1, targets: { api: { type: 'http', url: server.url, timeoutMs: 30_000 } } } }, { drainTimeoutMs: 30_000 })
      server.slow(20_000)
      const started = await wal.run(['daemon', 'start', '--json'])
      expect(started.code, started.stderr).toBe(0)
      const { pid, url } = JSON.parse(started.stdout) as { pid: number; url: string }
      useDaemonToken(wal, url)
      detachedPid = pid
      expect((await post(`${url}/v1/namespaces/orders/mutations`, { key: 'slow', payload: 1 })).status).toBe(200)
      await waitFor(() => server.received.length === 1)
      const stopped = await wal.run(['daemon', 'stop', '--timeout', '1s', '--json'])
      expect(stopped.code, stopped.stderr).toBe(0)
      expect(JSON.parse(stopped.stdout)).toMatchObject({ pid, killed: true })
      expect(isAlive(pid)).toBe(false)
      expect(pidFileExists(wal)).toBe(false)
    } finally {
      await server.close()
    }
  })
})

describe('wal daemon, mutations addressed to one target', () => {
  it('dead-letters once one addressed to a target no longer configured, and after a reload adding a target, applies it there', async () => {
    configure({ orders: { partitions: 2, targets: { store: { type: 'kv' }, gone: { type: 'kv', path: join(wal.dir, 'gone.db') } } } })
    const addressed = await wal.run(['produce', '-n', 'orders', '-k', 'a', '--target', 'gone', '--json', '-p', JSON.stringify(put('a', {}))])
    const { id } = JSON.parse(addressed.stdout) as { id: string }
    configure({ orders: { partitions: 2, targets: { store: { type: 'kv' } } } })
    const daemon = await startForegroundDaemon(wal)
    const dead = await waitFor(() => deadLetters(wal.stateDir, 'orders').find((d) => d.id === id), { timeoutMs: 60_000 })
    expect(dead).toMatchObject({ target: 'store', code: 'WAL_TARGET_UNKNOWN' })

    // A target added by a reload: the running consumer of the first target learns of it, and leaves it its mutations.
    configure({ orders: { partitions: 2, targets: { store: { type: 'kv' }, extra: { type: 'kv', path: join(wal.dir, 'extra.db') } } } })
    expect((await wal.run(['daemon', 'reload'])).code).toBe(0)
    const added = await wal.run(['produce', '-n', 'orders', '-k', 'b', '--target', 'extra', '-p', JSON.stringify(put('b', {}))])
    expect(added.code, added.stderr).toBe(0)
    const extraItems = (): number => {
      if (!existsSync(join(wal.dir, 'extra.db'))) return 0
      const db = new DatabaseSync(join(wal.dir, 'extra.db'), { readOnly: true, timeout: 5000 })
      try {
        return (db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n
      } catch {
        return 0
      } finally {
        db.close()
      }
    }
    await waitFor(() => extraItems() === 1, { timeoutMs: 60_000 })
    await waitFor(async () => {
      const offsets = JSON.parse((await wal.run(['offsets', 'show', '-n', 'orders', '--target', 'store', '--json'])).stdout) as { offsets: Array<{ lag: number }> }
      return offsets.offsets.every((o) => o.lag === 0)
    }, { timeoutMs: 60_000 })
    expect(deadLetters(wal.stateDir, 'orders')).toHaveLength(1)
    expect(await daemon.stop()).toBe(0)
  })
})
