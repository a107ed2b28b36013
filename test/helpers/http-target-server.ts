/** A real HTTP endpoint for consumer tests, whose answers each test programs per key. */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Received {
  key: string
  idempotencyKey: string
  attempt: number
  atMs: number
  body: string
  status: number
  /** The request's headers as sent: name, value, name, value… */
  rawHeaders: string[]
}

export interface TargetServer {
  url: string
  received: Received[]
  /** Answer 503 to the first `n` requests for this key. */
  failFirst(key: string, n: number, status?: number): void
  /** Answer 503 to the first `n` requests of each message (idempotency key) of this key. */
  failEachFirst(key: string, n: number): void
  /** Answer this status to every request for this key. */
  always(key: string, status: number): void
  /** Take this long to answer every request. */
  slow(ms: number): void
  close(): Promise<void>
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => (body += chunk))
    request.on('end', () => resolve(body))
    request.on('error', reject)
  })
}

export async function startTargetServer(): Promise<TargetServer> {
  const failures = new Map<string, { left: number; status: number }>()
  const fixed = new Map<string, number>()
  const failEach = new Map<string, number>()
  const received: Received[] = []
  let slowMs = 0
  const server: Server = createServer(async (request, response) => {
    const body = await readBody(request)
    const key = decodeURIComponent(String(request.headers['x-wal-key'] ?? ''))
    let status = 200
    const failing = failures.get(key)
    const idempotencyKey = String(request.headers['idempotency-key'] ?? '')
    if (fixed.has(key)) status = fixed.get(key)!
    else if (failEach.has(key) && received.filter((r) => r.idempotencyKey === idempotencyKey).length < failEach.get(key)!) status = 503
    else if (failing && failing.left > 0) {
      failing.left--
      status = failing.status
    }
    received.push({
      key,
      idempotencyKey,
      attempt: Number(request.headers['x-wal-attempt']),
      atMs: Date.now(),
      body,
      status,
      rawHeaders: request.rawHeaders,
    })
    if (slowMs > 0) await new Promise((resolve) => setTimeout(resolve, slowMs))
    response.writeHead(status, { 'content-type': 'text/plain' })
    response.end(status === 200 ? 'ok' : `refused with ${status}`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/apply`,
    received,
    failFirst: (key, n, status = 503) => failures.set(key, { left: n, status }),
    failEachFirst: (key, n) => failEach.set(key, n),
    always: (key, status) => fixed.set(key, status),
    slow: (ms) => (slowMs = ms),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}
