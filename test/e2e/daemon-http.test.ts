import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { daemonToken, isAlive, killDaemons, pidFileExists, post, startForegroundDaemon } from '../helpers/daemon.js'
import { kvItems } from '../helpers/state.js'
import { makeSandbox, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let detachedPid: number | undefined
const sockets: Socket[] = []
beforeEach(() => {
  wal = makeSandbox()
  detachedPid = undefined
})
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  await killDaemons(detachedPid)
  wal.cleanup()
})

const TOKEN = 'a-test-token-of-some-length'
const auth = { authorization: `Bearer ${TOKEN}` }

function configure(daemon: Record<string, unknown> = {}, namespaces: Record<string, unknown> = { orders: { partitions: 4, targets: { store: { type: 'kv' } } } }): void {
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces, daemon: { port: 0, leaseTtlMs: 1000, drainTimeoutMs: 5000, ...daemon } }))
}

/** A write request whose body is sent only in part: it stays in flight until `finish`. */
async function heldWrite(url: string, body: string): Promise<{ finish(): void; abandon(): void; answer: Promise<string> }> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  sockets.push(socket)
  await new Promise((resolve) => socket.once('connect', resolve))
  let text = ''
  socket.setEncoding('utf8').on('data', (d: string) => (text += d))
  const answer = new Promise<string>((resolve) => socket.on('close', () => resolve(text)))
  socket.write(`POST /v1/namespaces/orders/mutations HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 5)}`)
  return { finish: () => socket.write(body.slice(5)), abandon: () => socket.destroy(), answer }
}

describe('the daemon HTTP API', () => {
  it('sheds load past its in-flight limit with 429 and Retry-After, refuses large bodies with 413, and never hangs', async () => {
    configure({ maxInFlight: 2, maxBodyBytes: 2048, token: TOKEN })
    const daemon = await startForegroundDaemon(wal)
    const endpoint = `${daemon.url}/v1/namespaces/orders/mutations`
    const status = async () => (await (await fetch(`${daemon.url}/v1/status`, { headers: auth })).json()) as { http: { inFlight: number; reading: number } }

    // Without the token: 401, nothing written. Health and metrics need none.
    expect((await post(endpoint, { key: 'k', payload: 1 })).status).toBe(401)
    expect((await fetch(`${daemon.url}/healthz`)).status).toBe(200)
    expect((await post(endpoint, { key: 'first', payload: 0 }, auth)).status).toBe(200)

    // Writes whose bodies are still arriving hold no slot: others are answered meanwhile.
    const held = [await heldWrite(daemon.url, JSON.stringify({ key: 'held-1', payload: 1 })), await heldWrite(daemon.url, JSON.stringify({ key: 'held-2', payload: 2 }))]
    await waitFor(async () => (await status()).http.reading === 2)
    expect((await status()).http.inFlight).toBe(0)
    expect((await post(endpoint, { key: 'meanwhile', payload: 1 }, auth)).status).toBe(200)

    // The held writes complete once their bodies arrive.
    for (const h of held) h.finish()
    for (const h of held) expect(await h.answer).toMatch(/^HTTP\/1.1 200[^]*"durable":true/)
    // A writer that goes away mid-body leaves nothing behind.
    const gone = await heldWrite(daemon.url, JSON.stringify({ key: 'gone', payload: 3 }))
    await waitFor(async () => (await status()).http.reading === 1)
    gone.abandon()
    await waitFor(async () => (await status()).http.reading === 0)

    // Too large: by Content-Length, and by what is actually sent (chunked).
    const big = JSON.stringify({ key: 'big', payload: 'x'.repeat(4000) })
    expect((await post(endpoint, big, auth)).status).toBe(413)
    const chunked = await fetch(endpoint, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode(big)), c.close()) }),
      duplex: 'half',
    } as RequestInit)
    expect(chunked.status).toBe(413)

    // Many more concurrent writers than the limit: each gets an answer, 200 or 429 (with Retry-After), and the daemon lives on.
    const storm = await Promise.all(Array.from({ length: 200 }, (_, i) => post(endpoint, [{ key: `s${i}`, payload: i }], auth)))
    const codes = new Set(storm.map((r) => r.status))
    expect([...codes].every((c) => c === 200 || c === 429)).toBe(true)
    const shed = storm.find((r) => r.status === 429)!
    expect(shed.headers.get('retry-after')).toBe('1')
    expect(shed.body).toMatchObject({ durable: false })
    expect(storm.filter((r) => r.status === 200).every((r) => r.body.durable === true)).toBe(true)
    expect(isAlive(daemon.pid)).toBe(true)
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text()
    // Shed, not queued: the storm leaves the daemon's memory in bounds.
    const rssBytes = Number(/^process_resident_memory_bytes (\d+)/m.exec(metrics)![1])
    expect(rssBytes).toBeLessThan(300 * 1024 * 1024)
    expect(metrics).toMatch(/wal_http_shed_total\{reason="in-flight"\} [1-9]/)
    expect(metrics).toMatch(/wal_http_shed_total\{reason="too-large"\} 2/)
    expect(await daemon.stop()).toBe(0)
  })

  it('stops within the drain deadline even while a client is still sending a write', async () => {
    configure({ drainTimeoutMs: 500, requestTimeoutMs: 60_000, token: TOKEN })
    const daemon = await startForegroundDaemon(wal)
    const held = await heldWrite(daemon.url, JSON.stringify({ key: 'never', payload: 1 }))
    await waitFor(async () => ((await (await fetch(`${daemon.url}/v1/status`, { headers: auth })).json()) as { http: { reading: number } }).http.reading === 1)
    const stoppingMs = Date.now()
    expect(await daemon.stop()).toBe(0)
    expect(Date.now() - stoppingMs).toBeLessThan(10_000)
    await held.answer
    expect((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).toBe('')
  })

  it('rejects invalid mutations with 400 and the messages of wal produce, writing the good ones of a batch', async () => {
    configure()
    const daemon = await startForegroundDaemon(wal)
    const endpoint = `${daemon.url}/v1/namespaces/orders/mutations`
    const typo = await post(endpoint, { kye: 'a', payload: 1 })
    expect(typo.status).toBe(400)
    const cli = await wal.run(['produce', '-n', 'orders', '--json'], { input: '{"kye":"a","payload":1}\n' })
    expect(typo.body.message).toBe((JSON.parse(cli.stdout) as { error: { message: string } }).error.message)

    const batch = await post(endpoint, [{ key: 'ok', payload: 1 }, { key: 'bad', payload: 2, target: 'nowhere' }])
    expect(batch.status).toBe(400)
    // As with lines of wal produce, the bad mutation is rejected alone and the good one is durable.
    expect(batch.body).toMatchObject({ durable: false, results: [{ index: 0, durable: true }, { index: 1, durable: false, error: { code: 'WAL_TARGET_UNKNOWN' } }] })
    expect(batch.body.message).toMatch(/^1 of 2 mutations durable; 1 not \(first: index 1: .*\): fix those and send them again$/)
    expect((await post(endpoint, 'not json')).status).toBe(400)
    expect((await post(endpoint, [])).status).toBe(400)
    const unknown = await post(`${daemon.url}/v1/namespaces/nope/mutations`, { payload: 1 })
    expect(unknown.status).toBe(404)
    expect(unknown.body.message).toContain('"nope" is not declared')
    // NDJSON works too; a repeated idempotency key is acked as a duplicate.
    const lines = '{"key":"n1","payload":1,"idempotencyKey":"once"}\n{"key":"n2","payload":2}\n'
    const nd = await post(endpoint, lines, { 'content-type': 'application/x-ndjson' })
    expect(nd.body).toMatchObject({ durable: true, message: '2 mutations durable' })
    const repeat = await post(endpoint, { key: 'n1', payload: 1, idempotencyKey: 'once' })
    expect(repeat.body).toMatchObject({ durable: true, duplicate: true })
    // Nothing of the rejected mutations reached the log.
    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(tail.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key).sort()).toEqual(['n1', 'n2', 'ok'])
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text()
    expect(metrics).toContain('wal_produced_total{namespace="orders"} 3')
    expect(metrics).toMatch(/wal_consumer_lag\{namespace="orders",target="store",partition="\d"\}/)
    expect(await daemon.stop()).toBe(0)
  })
})

/** A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and a rogue self-signed one. */
function makeCertificates(dir: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=wal-test-ca')
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n')
  for (const name of ['server', 'client']) {
    openssl('req', ...ec, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...(name === 'server' ? ['-extfile', 'server.ext'] : []))
  }
  openssl('req', '-x509', ...ec, '-keyout', 'rogue-key.pem', '-out', 'rogue.pem', '-days', '2', '-subj', '/CN=rogue')
}

/** A write over HTTPS presenting `client` (a certificate name in dir), or none. */
function tlsWrite(url: string, dir: string, client: string | null, token: string | null): Promise<number> {
  const pem = (name: string) => readFileSync(join(dir, name))
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      `${url}/v1/namespaces/orders/mutations`,
      { method: 'POST', ca: pem('ca.pem'), ...(client === null ? {} : { cert: pem(`${client}.pem`), key: pem(`${client}-key.pem`) }), headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) } },
      (response) => {
        response.resume()
        response.on('end', () => resolve(response.statusCode!))
      },
    )
    request.on('error', reject)
    request.end(JSON.stringify({ key: 'k', payload: 1 }))
  })
}

describe('the daemon over mTLS', () => {
  it('serves HTTPS only to clients with a certificate its CA signed, and the daemon commands still reach it', async () => {
    makeCertificates(wal.cwd)
    configure({ tls: { cert: 'server.pem', key: 'server-key.pem', ca: 'ca.pem' } })
    const started = await wal.run(['daemon', 'start', '--json'])
    expect(started.code, started.stderr).toBe(0)
    const { pid, url } = JSON.parse(started.stdout) as { pid: number; url: string }
    detachedPid = pid
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    const token = daemonToken(wal)
    expect(await tlsWrite(url, wal.cwd, 'client', token)).toBe(200)
    expect(await tlsWrite(url, wal.cwd, 'client', null)).toBe(401)
    await expect(tlsWrite(url, wal.cwd, null, token)).rejects.toThrow()
    await expect(tlsWrite(url, wal.cwd, 'rogue', token)).rejects.toThrow()
    await expect(fetch(`${url.replace('https', 'http')}/healthz`)).rejects.toThrow()
    const status = await wal.run(['daemon', 'status', '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect((JSON.parse(status.stdout) as { url: string }).url).toBe(url)
    expect((await wal.run(['daemon', 'stop'])).code).toBe(0)
    expect(isAlive(pid)).toBe(false)
  })

  it('refuses to start when a certificate file is missing, leaving no pid file', async () => {
    configure({ tls: { cert: 'absent.pem', key: 'absent-key.pem' } })
    const started = await wal.run(['daemon', 'start'])
    expect(started.code).toBe(3)
    expect(started.stderr).toContain('cannot read daemon.tls files')
    expect(pidFileExists(wal)).toBe(false)
  })
})

describe('wal config show', () => {
  it("shows the daemon's effective settings, its bearer token redacted", async () => {
    configure({ token: TOKEN, maxInFlight: 5 })
    const shown = JSON.parse((await wal.run(['config', 'show', '--json'])).stdout) as { daemon: Record<string, unknown> }
    expect(shown.daemon).toMatchObject({ host: '127.0.0.1', port: 0, maxInFlight: 5, maxBodyBytes: 4 * 1024 * 1024, shard: 'auto', token: '<redacted>' })
    expect(JSON.stringify(shown)).not.toContain(TOKEN)
  })
})

describe('a daemon killed with SIGKILL', () => {
  it('loses nothing acknowledged and applies nothing twice in effect once started again', async () => {
    // A rate limit keeps the consumer behind the writes, so the kill lands with work not yet applied.
    configure({}, { orders: { partitions: 4, targets: { store: { type: 'kv', rate: '400/s' } } } })
    const first = await startForegroundDaemon(wal)
    const endpoint = `${first.url}/v1/namespaces/orders/mutations`
    const KEYS = 100
    const VERSIONS = 10
    // Every key is written VERSIONS times, in order; each write is acked before the next is sent.
    for (let v = 0; v < VERSIONS; v++) {
      const batch = Array.from({ length: KEYS }, (_, k) => ({ key: `k${k}`, payload: { op: 'put', table: 't', key: { id: `k${k}` }, item: { v } } }))
      const answer = await post(endpoint, batch)
      expect(answer.body).toMatchObject({ durable: true })
    }
    first.child.kill('SIGKILL')
    await first.exited
    const atKill = kvItems(wal.stateDir, 'orders')
    expect(atKill.length === KEYS && atKill.every((r) => JSON.parse(r.item!).v === VERSIONS - 1)).toBe(false)
    expect(pidFileExists(wal)).toBe(true) // left behind: the next start must take it over

    const started = await wal.run(['daemon', 'start', '--json'])
    expect(started.code, started.stderr).toBe(0)
    detachedPid = (JSON.parse(started.stdout) as { pid: number }).pid
    // Every key ends at its last version: nothing lost, and no replayed older write won.
    await waitFor(() => kvItems(wal.stateDir, 'orders').length === KEYS && kvItems(wal.stateDir, 'orders').every((r) => JSON.parse(r.item!).v === VERSIONS - 1), { timeoutMs: 30_000 })
    type Status = { consumers: Array<{ lag: number }> }
    await waitFor(async () => (JSON.parse((await wal.run(['daemon', 'status', '--json'])).stdout) as Status).consumers[0]!.lag === 0)
    expect((await wal.run(['daemon', 'stop'])).code).toBe(0)
    expect(pidFileExists(wal)).toBe(false)
  })
})
