// The daemon as an attacker meets it: a web page in the operator's browser, a page that rebinds its
// name to 127.0.0.1, clients that never finish their bodies, and writers that invent namespaces.
import { statSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { runPageInBrowser } from '../helpers/browser.js'
import { authHeaders, daemonFile, daemonToken, killDaemons, post, startForegroundDaemon } from '../helpers/daemon.js'
import { makeSandbox, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const sockets: Socket[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  await killDaemons()
  wal.cleanup()
})

/** One raw HTTP/1.1 request; resolves with the status code. */
function rawRequest(url: string, head: string, body = ''): Promise<number> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    sockets.push(socket)
    let text = ''
    socket.setEncoding('utf8').on('data', (d: string) => (text += d))
    socket.on('error', reject)
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0)))
    socket.write(`${head}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  })
}

async function logged(namespace = 'default'): Promise<string> {
  const tail = await wal.run(['tail', '-n', namespace, '--json'])
  return tail.code === 0 ? tail.stdout : ''
}

describe('a daemon started with no config', () => {
  it('asks for the token it generated, kept 0600 in the state directory, and wal daemon status uses it', async () => {
    const daemon = await startForegroundDaemon(wal)
    const token = daemonToken(wal)!
    expect(token.length).toBeGreaterThanOrEqual(32)
    expect(statSync(daemonFile(wal, 'token')).mode & 0o777).toBe(0o600)
    const endpoint = `${daemon.url}/v1/namespaces/default/mutations`
    expect((await post(endpoint, { key: 'a', payload: 1 }, { authorization: '' })).status).toBe(401)
    expect((await post(endpoint, { key: 'a', payload: 1 }, { authorization: `Bearer ${token}x` })).status).toBe(401)
    expect((await post(endpoint, { key: 'a', payload: 1 }, { authorization: `Bearer ${token}` })).status).toBe(200)
    const status = await wal.run(['daemon', 'status', '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ auth: 'token' })
    expect(daemon.output()).not.toContain(token)
    // The same token after a restart: clients configured with it keep working.
    expect(await daemon.stop()).toBe(0)
    await startForegroundDaemon(wal)
    expect(daemonToken(wal)).toBe(token)
  })

  it('refuses a cross-site form POST and a DNS-rebinding request, writing nothing', async () => {
    const daemon = await startForegroundDaemon(wal)
    const { host } = new URL(daemon.url)
    const bearer = `authorization: Bearer ${daemon.token}`
    const body = '{"key":"evil","payload":1}'
    const write = 'POST /v1/namespaces/default/mutations HTTP/1.1'
    // A form: text/plain from another origin (it cannot set a token; even with one, it is refused).
    expect(await rawRequest(daemon.url, `${write}\r\nhost: ${host}\r\norigin: http://evil.example\r\ncontent-type: text/plain`, body)).toBe(403)
    expect(await rawRequest(daemon.url, `${write}\r\nhost: ${host}\r\n${bearer}\r\norigin: http://evil.example\r\ncontent-type: application/json`, body)).toBe(403)
    expect(await rawRequest(daemon.url, `${write}\r\nhost: ${host}\r\n${bearer}\r\ncontent-type: text/plain`, body)).toBe(415)
    expect(await rawRequest(daemon.url, `${write}\r\nhost: ${host}\r\n${bearer}\r\ncontent-type: application/x-www-form-urlencoded`, body)).toBe(415)
    expect(await rawRequest(daemon.url, `${write}\r\nhost: ${host}\r\n${bearer}`, body)).toBe(415)
    // A page whose name now resolves to 127.0.0.1 names its own host.
    expect(await rawRequest(daemon.url, `${write}\r\nhost: evil.example:${new URL(daemon.url).port}\r\n${bearer}\r\ncontent-type: application/json`, body)).toBe(421)
    expect(await rawRequest(daemon.url, `GET /v1/status HTTP/1.1\r\nhost: evil.example\r\n${bearer}`)).toBe(421)
    expect(await rawRequest(daemon.url, `GET /metrics HTTP/1.1\r\nhost: evil.example`)).toBe(421)
    expect(await rawRequest(daemon.url, `POST /v1/reload HTTP/1.1\r\nhost: ${host}\r\norigin: http://evil.example\r\ncontent-type: text/plain`)).toBe(403)
    expect(await logged()).toBe('')
    // The same write, as a client on this machine sends it, lands: the refusals were the gate's.
    expect(await rawRequest(daemon.url, `${write}\r\nhost: localhost\r\n${bearer}\r\ncontent-type: application/json`, body)).toBe(200)
    expect(await logged()).toContain('"evil"')
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text()
    expect(metrics).toMatch(/wal_http_refused_total\{status="403"\} 3/)
  })

  it('answers an origin listed in daemon.allowedOrigins, and no other', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ daemon: { port: 0, allowedOrigins: ['https://ops.example'], allowedHosts: ['wal.internal'] } }))
    const daemon = await startForegroundDaemon(wal)
    const endpoint = `${daemon.url}/v1/namespaces/default/mutations`
    expect((await post(endpoint, { key: 'a', payload: 1 }, { origin: 'https://ops.example' })).status).toBe(200)
    expect((await post(endpoint, { key: 'b', payload: 1 }, { origin: 'https://ops.example.evil' })).status).toBe(403)
    const bearer = `authorization: Bearer ${daemon.token}`
    expect(await rawRequest(daemon.url, `POST /v1/namespaces/default/mutations HTTP/1.1\r\nhost: wal.internal\r\n${bearer}\r\ncontent-type: application/json`, '{"key":"c","payload":1}')).toBe(200)
  })

  it('refuses a web page in a real browser that calls it with fetch()', async () => {
    const daemon = await startForegroundDaemon(wal)
    const endpoint = `${daemon.url}/v1/namespaces/default/mutations`
    const page = `<!doctype html><script>
      const tries = {
        json: () => fetch(${JSON.stringify(endpoint)}, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"key":"browser-json","payload":1}' }),
        form: () => fetch(${JSON.stringify(endpoint)}, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"key":"browser-form","payload":1}' }),
        reload: () => fetch(${JSON.stringify(`${daemon.url}/v1/reload`)}, { method: 'POST', mode: 'no-cors' }),
        status: () => fetch(${JSON.stringify(`${daemon.url}/v1/status`)}),
      }
      const results = {}
      ;(async () => {
        for (const [name, go] of Object.entries(tries)) {
          try {
            const response = await go()
            results[name] = response.type === 'opaque' ? 'opaque' : response.status
          } catch (error) {
            results[name] = 'failed: ' + error.message
          }
        }
        await fetch('/report', { method: 'POST', body: JSON.stringify(results) })
      })()
    </script>`
    const results = (await runPageInBrowser(page)) as Record<string, unknown>
    // CORS-checked requests fail in the page (the daemon answers them 403); no-cors ones get nothing readable.
    expect(results.json).toMatch(/^failed/)
    expect(results.status).toMatch(/^failed/)
    expect(results.form).toBe('opaque')
    expect(results.reload).toBe('opaque')
    // The browser did reach the daemon, which refused it; nothing was written.
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text()
    expect(metrics).toMatch(/wal_http_refused_total\{status="403"\} [1-9]/)
    expect(await logged()).toBe('')
    expect(daemon.events('reloaded')).toEqual([])
  })
})

describe('a page from an origin in daemon.allowedOrigins', () => {
  it('may call the daemon from a real browser, with the token', async () => {
    let daemon: Awaited<ReturnType<typeof startForegroundDaemon>> | undefined
    const results = (await runPageInBrowser(
      () => `<!doctype html><script>
        (async () => {
          const results = {}
          try {
            const response = await fetch(${JSON.stringify(`${daemon!.url}/v1/namespaces/default/mutations`)}, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: 'Bearer ${daemon!.token}' },
              body: '{"key":"from-the-console","payload":1}',
            })
            results.write = response.status
            results.body = await response.json()
          } catch (error) {
            results.write = 'failed: ' + error.message
          }
          await fetch('/report', { method: 'POST', body: JSON.stringify(results) })
        })()
      </script>`,
      {
        beforeOpen: async (origin) => {
          writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ daemon: { port: 0, allowedOrigins: [origin] } }))
          daemon = await startForegroundDaemon(wal)
        },
      },
    )) as { write: unknown; body: { durable?: boolean } }
    expect(results.write).toBe(200)
    expect(results.body.durable).toBe(true)
    expect(await logged()).toContain('from-the-console')
  })
})

describe('the daemon under slow clients', () => {
  it('acks every good writer while 80 clients send their bodies a byte a second', async () => {
    // A request deadline far beyond the test, so that the slow clients are still there at its end, however busy the machine.
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ daemon: { port: 0, requestTimeoutMs: 600_000 } }))
    const daemon = await startForegroundDaemon(wal)
    const { hostname, port } = new URL(daemon.url)
    const slow: Array<{ socket: Socket; closed: boolean }> = []
    const drip: NodeJS.Timeout[] = []
    try {
      for (let i = 0; i < 80; i++) {
        const socket = connect(Number(port), hostname)
        sockets.push(socket)
        const entry = { socket, closed: false }
        socket.on('close', () => (entry.closed = true))
        socket.on('error', () => undefined)
        slow.push(entry)
        const body = JSON.stringify({ key: `slow-${i}`, payload: 'x'.repeat(200) })
        socket.write(
          `POST /v1/namespaces/default/mutations HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: Bearer ${daemon.token}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`,
        )
        let sent = 0
        drip.push(setInterval(() => sent < body.length && socket.write(body[sent++]!), 1000))
      }
      const status = async () => (await (await fetch(`${daemon.url}/v1/status`, { headers: authHeaders(daemon.url) })).json()) as { http: { reading: number; inFlight: number } }
      await waitFor(async () => (await status()).http.reading === 80, { timeoutMs: 30_000 })

      const good = await Promise.all(Array.from({ length: 20 }, (_, i) => post(`${daemon.url}/v1/namespaces/default/mutations`, { key: `good-${i}`, payload: i })))
      expect(good.map((r) => r.status)).toEqual(Array(20).fill(200))
      expect(good.every((r) => r.body.durable === true)).toBe(true)
      // The slow ones are still connected, still sending: they cost a socket each, never a write slot.
      expect(slow.filter((s) => s.closed)).toEqual([])
      expect((await status()).http.reading).toBe(80)
    } finally {
      for (const timer of drip) clearInterval(timer)
    }
  })
})

describe('bodies arriving at once', () => {
  it('hold at most daemon.maxInFlight × maxBodyBytes of memory: past it a write gets 429, and the others land', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ daemon: { port: 0, maxInFlight: 2, maxBodyBytes: 2048 } }))
    const daemon = await startForegroundDaemon(wal)
    const { hostname, port } = new URL(daemon.url)
    const body = JSON.stringify({ key: 'held', payload: 'x'.repeat(1900) })
    const held: Array<{ finish(): void; answer: Promise<string> }> = []
    for (let i = 0; i < 2; i++) {
      const socket = connect(Number(port), hostname)
      sockets.push(socket)
      let text = ''
      socket.setEncoding('utf8').on('data', (d: string) => (text += d))
      const answer = new Promise<string>((resolve) => socket.on('close', () => resolve(text)))
      socket.write(
        `POST /v1/namespaces/default/mutations HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${daemon.token}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, 1800)}`,
      )
      held.push({ finish: () => socket.write(body.slice(1800)), answer })
    }
    const status = async () => (await (await fetch(`${daemon.url}/v1/status`, { headers: authHeaders(daemon.url) })).json()) as { http: { reading: number } }
    await waitFor(async () => (await status()).http.reading === 2)
    // 3,600 of 4,096 bytes are taken: a 1,000-byte body does not fit.
    const shed = await post(`${daemon.url}/v1/namespaces/default/mutations`, { key: 'big', payload: 'y'.repeat(1000) })
    expect(shed.status).toBe(429)
    expect(shed.body.message).toContain('daemon.maxInFlight × daemon.maxBodyBytes')
    for (const h of held) h.finish()
    for (const h of held) expect(await h.answer).toMatch(/^HTTP\/1.1 200/)
    expect((await post(`${daemon.url}/v1/namespaces/default/mutations`, { key: 'big', payload: 'y'.repeat(1000) })).status).toBe(200)
  })
})

describe('a client that never finishes its request', () => {
  it('is cut off after daemon.headersTimeoutMs (headers) or daemon.requestTimeoutMs (body), and nothing of it is written', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ daemon: { port: 0, headersTimeoutMs: 1000, requestTimeoutMs: 3000 } }))
    const daemon = await startForegroundDaemon(wal)
    const { hostname, port } = new URL(daemon.url)
    const open = (text: string): { closed: () => boolean; answer: () => string } => {
      const socket = connect(Number(port), hostname)
      sockets.push(socket)
      let closed = false
      let answer = ''
      socket.setEncoding('utf8').on('data', (d: string) => (answer += d))
      socket.on('close', () => (closed = true))
      socket.on('error', () => undefined)
      socket.write(text)
      return { closed: () => closed, answer: () => answer }
    }
    const headers = open(`POST /v1/namespaces/default/mutations HTTP/1.1\r\nhost: ${hostname}`)
    const body = open(
      `POST /v1/namespaces/default/mutations HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${daemon.token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"key":"never",`,
    )
    await waitFor(() => headers.closed() && body.closed(), { timeoutMs: 30_000 })
    expect(body.answer()).not.toContain('200 OK')
    expect(await logged()).toBe('')
  })
})

describe('namespaces created over HTTP', () => {
  it('are refused when the config declares its namespaces', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: {} }, daemon: { port: 0 } }))
    const daemon = await startForegroundDaemon(wal)
    const answer = await post(`${daemon.url}/v1/namespaces/invented/mutations`, { key: 'a', payload: 1 })
    expect(answer.status).toBe(404)
    expect((await wal.run(['ns', 'ls', '--json'])).stdout).not.toContain('invented')
  })

  it('stop at daemon.maxAutoNamespaces in zero-config mode', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ daemon: { port: 0, maxAutoNamespaces: 3 } }))
    const daemon = await startForegroundDaemon(wal)
    const answers = []
    for (let i = 0; i < 6; i++) answers.push(await post(`${daemon.url}/v1/namespaces/made-${i}/mutations`, { key: 'a', payload: 1 }))
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 403, 403, 403])
    expect(answers[3]!.body.message).toContain('daemon.maxAutoNamespaces')
    // Namespaces that exist still take writes.
    expect((await post(`${daemon.url}/v1/namespaces/made-0/mutations`, { key: 'b', payload: 2 })).status).toBe(200)
  })
})

describe('where the daemon listens', () => {
  it('refuses to run without a token beyond loopback, or in clear text beyond loopback unless told to, and warns when told', async () => {
    const noAuth = await wal.run(['daemon', 'run', '--port', '0', '--host', '0.0.0.0', '--no-auth'])
    expect(noAuth.code).toBe(3)
    expect(noAuth.stderr).toContain('only on loopback')
    const plain = await wal.run(['daemon', 'run', '--port', '0', '--host', '0.0.0.0'])
    expect(plain.code).toBe(3)
    expect(plain.stderr).toContain('without TLS')
    expect(plain.stderr).toContain('--allow-plain-http')
    const told = await startForegroundDaemon(wal, ['--host', '0.0.0.0', '--allow-plain-http'])
    expect(told.events('exposed')).toEqual([expect.objectContaining({ level: 40, host: '0.0.0.0' })])
    // Beyond loopback, /metrics (namespace and target names, rates) needs the token as /v1/* does.
    const bare = await fetch(`${told.url}/metrics`)
    expect(bare.status).toBe(401)
    expect(await bare.text()).not.toContain('wal_')
    const scraped = await fetch(`${told.url}/metrics`, { headers: { authorization: `Bearer ${daemonToken(wal)}` } })
    expect(scraped.status).toBe(200)
    expect(await scraped.text()).toContain('wal_')
  })

  it('runs without a token on loopback when asked with --no-auth, and logs that choice', async () => {
    const daemon = await startForegroundDaemon(wal, ['--no-auth'])
    expect(daemon.events('auth-disabled')).toHaveLength(1)
    expect((await post(`${daemon.url}/v1/namespaces/default/mutations`, { key: 'a', payload: 1 }, { authorization: '' })).status).toBe(200)
    // Browsers are still refused.
    expect((await post(`${daemon.url}/v1/namespaces/default/mutations`, { key: 'b', payload: 1 }, { origin: 'http://evil.example' })).status).toBe(403)
  })
})
