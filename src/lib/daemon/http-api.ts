/**
 * The daemon's HTTP API on node:http: the write path, health, readiness, metrics, status and reload.
 * Every request passes the gate first (Host, Origin; for /v1/* the token; for POST the content type).
 * Load is shed, never queued without bound: a write takes one of `maxInFlight` slots only once its body
 * has arrived (a slow client costs a socket, never a slot), past them the answer is 429 with
 * Retry-After, while draining 503; bodies past `maxBodyBytes` get 413 and are not read.
 */
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'

import { namespaceSettings } from '../config/load.js'
import type { ResolvedConfig } from '../config/schema.js'
import { ConfigError, DurabilityUnknownError, InvalidRecordError, toWalError, UnknownNamespaceError, UsageError, WalError } from '../errors.js'
import type { LogPool } from './consumers.js'
import { parseProduceBody, parseTransactionBody, produceAnswer, transactionAnswer, transactionMarker, transactionPartsAnswer, type ProduceAnswer } from './http-produce.js'
import type { Logger } from './logger.js'
import type { DaemonMetrics } from './metrics.js'
import { checkContentType, checkHost, checkOrigin, checkToken, type Refusal } from './gate.js'

export interface ApiContext {
  config(): ResolvedConfig
  logs: LogPool
  metrics: DaemonMetrics
  logger: Logger
  status(): Promise<unknown>
  reload(): Promise<{ ok: boolean }>
  /** null when ready to take writes and run consumers; else why not. */
  notReady(): string | null
  draining(): boolean
  /** A write made a namespace's log exist: consume it if the config says so. */
  produced(namespace: string): void
  /** The bearer token requests to /v1/* must carry; null when auth is off. */
  token(): string | null
  /**
   * Whether the daemon listens beyond loopback: then /metrics (namespace and target names, rates) needs
   * the token too, as Prometheus can send it; on loopback it answers without, as exporters do.
   */
  exposed: boolean
  /**
   * Whether a write may go to an undeclared namespace (zero-config mode): null if so, else why not. Takes
   * a place for it until `release`.
   */
  claimNamespace(namespace: string): string | null
  releaseNamespace(namespace: string): void
}

const MUTATIONS_PATH = /^\/v1\/namespaces\/([^/]+)\/(mutations|transactions)(?:\/([^/]+)\/(parts|commit))?$/
/** Metric labels of the fixed routes. */
const ROUTES = new Map([
  ['GET /healthz', 'healthz'],
  ['GET /readyz', 'readyz'],
  ['GET /metrics', 'metrics'],
  ['GET /v1/status', 'status'],
  ['POST /v1/reload', 'reload'],
])

class BodyTooLarge extends Error {}
/** The bodies being received at once would take more memory than daemon.maxInFlight × maxBodyBytes. */
class BodiesTooLarge extends Error {}

/** Bytes of request bodies held at once, across requests; a body that would go past `limit` is refused. */
interface BodyBudget {
  used: number
  limit: number
}

async function readBody(request: IncomingMessage, maxBytes: number, budget: BodyBudget): Promise<Buffer> {
  let size = 0
  const read = new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    const give = (error: Error): void => {
      request.removeAllListeners('data')
      request.resume()
      reject(error)
    }
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      budget.used += chunk.length
      if (size > maxBytes) return give(new BodyTooLarge())
      if (budget.used > budget.limit) return give(new BodiesTooLarge())
      chunks.push(chunk)
    })
    request.on('end', () => resolve(Buffer.concat(chunks)))
    request.on('error', reject)
    // A client that goes away (or is cut off by requestTimeout) mid-body: settle, so its bytes are given back.
    request.on('close', () => {
      if (!request.complete) reject(new Error('client went away'))
    })
  })
  try {
    return await read
  } finally {
    budget.used -= size
  }
}

export interface ApiServer {
  server: Server
  /** Write requests being handled now (their bodies read). */
  inFlight(): number
  /** Write requests whose bodies are still arriving. */
  reading(): number
  /** Resolves once every write request in progress has had its answer. */
  settled(): Promise<void>
}

export function createApiServer(ctx: ApiContext): ApiServer {
  let inFlight = 0
  let reading = 0
  const bodies: BodyBudget = { used: 0, limit: 0 }
  const pending = new Set<Promise<void>>()

  const send = (response: ServerResponse, route: string, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    ctx.metrics.httpRequests.inc({ route, code: String(status) })
    if (response.headersSent || response.destroyed) return
    const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`
    response.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; version=0.0.4' : 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
    response.end(text)
  }

  const refuse = (response: ServerResponse, route: string, refusal: Refusal): void => {
    ctx.metrics.httpRefused.inc({ status: String(refusal.status) })
    // The body is not read: close, so that what the client still sends goes nowhere.
    send(response, route, refusal.status, { durable: false, message: refusal.message }, { ...refusal.headers, connection: 'close' })
  }

  /**
   * A write: mutations, or (with `txn`: its id, or null for a new one) a whole transaction, or with
   * `step` parts added to an open transaction or its marker.
   */
  const produce = async (request: IncomingMessage, response: ServerResponse, namespace: string, txn?: string | null, step?: { kind: 'parts' } | { kind: 'commit'; parts: string | null }): Promise<void> => {
    const route = txn === undefined ? 'produce' : 'transactions'
    const { maxInFlight, maxBodyBytes } = ctx.config().daemon
    if (ctx.draining()) {
      ctx.metrics.httpShed.inc({ reason: 'draining' })
      send(response, route, 503, { durable: false, message: 'the daemon is stopping; nothing was written' }, { 'retry-after': '5', connection: 'close' })
      return
    }
    const length = Number(request.headers['content-length'])
    if (Number.isFinite(length) && length > maxBodyBytes) {
      ctx.metrics.httpShed.inc({ reason: 'too-large' })
      send(response, route, 413, { durable: false, message: `the body is ${length} bytes, above the ${maxBodyBytes}-byte limit (daemon.maxBodyBytes); nothing was written` }, { connection: 'close' })
      return
    }
    // The body first: a client that sends it slowly holds its socket (until requestTimeoutMs), not a slot.
    let text: Buffer
    reading++
    bodies.limit = maxInFlight * maxBodyBytes
    try {
      text = await readBody(request, maxBodyBytes, bodies)
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        ctx.metrics.httpShed.inc({ reason: 'too-large' })
        send(response, route, 413, { durable: false, message: `the body is above the ${maxBodyBytes}-byte limit (daemon.maxBodyBytes); nothing was written` }, { connection: 'close' })
      }
      if (error instanceof BodiesTooLarge) {
        ctx.metrics.httpShed.inc({ reason: 'memory' })
        send(response, route, 429, { durable: false, message: `too many bytes of writes arriving at once (limit daemon.maxInFlight × daemon.maxBodyBytes = ${bodies.limit}); nothing was written, try again shortly` }, { 'retry-after': '1', connection: 'close' })
      }
      return
    } finally {
      reading--
    }
    if (ctx.draining()) {
      ctx.metrics.httpShed.inc({ reason: 'draining' })
      send(response, route, 503, { durable: false, message: 'the daemon is stopping; nothing was written' }, { 'retry-after': '5', connection: 'close' })
      return
    }
    if (inFlight >= maxInFlight) {
      ctx.metrics.httpShed.inc({ reason: 'in-flight' })
      send(response, route, 429, { durable: false, message: `too many writes at once (limit ${maxInFlight}); nothing was written, try again shortly` }, { 'retry-after': '1' })
      return
    }
    inFlight++
    const startedMs = performance.now()
    try {
      const idempotencyKey = request.headers['idempotency-key']
      const answer = await write(namespace, text, request.headers['content-type'], txn, step, typeof idempotencyKey === 'string' ? idempotencyKey : undefined)
      if (answer.status === 200) ctx.metrics.produceSeconds.observe({ namespace }, (performance.now() - startedMs) / 1000)
      send(response, route, answer.status, answer.body, answer.status === 503 ? { 'retry-after': '1' } : {})
    } finally {
      inFlight--
    }
  }

  const write = async (namespace: string, text: Buffer, contentType: string | undefined, txn?: string | null, step?: { kind: 'parts' } | { kind: 'commit'; parts: string | null }, idempotencyKey?: string): Promise<ProduceAnswer> => {
    const config = ctx.config()
    let settings
    try {
      settings = namespaceSettings(config, namespace)
    } catch (error) {
      const walError = toWalError(error)
      return { status: error instanceof UnknownNamespaceError ? 404 : 400, body: { durable: false, message: walError.message, error: walError.toJSON() } }
    }
    const parsed =
      txn === undefined
        ? parseProduceBody(text, contentType, namespace, config, Date.now(), idempotencyKey)
        : step?.kind === 'commit'
          ? transactionMarker(namespace, txn ?? '', step.parts, Date.now())
          : parseTransactionBody(text, contentType, namespace, config, Date.now(), txn, step?.kind === 'parts' ? 'parts' : 'whole')
    if (!parsed.ok) return parsed.answer
    // Every mutation of the request was rejected by the door: nothing to write.
    if ('indexes' in parsed && parsed.mutations.length === 0) return produceAnswer(parsed, [], namespace)
    const refused = settings.declared ? null : ctx.claimNamespace(namespace)
    if (refused !== null) {
      ctx.metrics.httpRefused.inc({ status: '403' })
      return { status: 403, body: { durable: false, message: refused, error: new ConfigError(refused, { code: 'WAL_NAMESPACE_LIMIT' }).toJSON() } }
    }
    try {
      const log = await ctx.logs.get(settings)
      // A mutation the backend refuses for what it holds is answered for by index; the others are written.
      const results = await log.append(parsed.mutations, { perEntryErrors: true })
      ctx.metrics.produced.inc({ namespace }, results.filter((r) => !r.duplicate && r.error === undefined).length)
      ctx.produced(namespace)
      if (!('txn' in parsed)) return produceAnswer(parsed, results, namespace)
      return step?.kind === 'parts' ? transactionPartsAnswer(parsed.txn, parsed.mutations, results, namespace) : transactionAnswer(parsed.txn, parsed.mutations, results, namespace)
    } catch (error) {
      const walError = toWalError(error)
      if (walError instanceof DurabilityUnknownError) {
        const idempotencyKeys = parsed.mutations.map((m) => m.idempotencyKey)
        return {
          status: 504,
          body: { durable: 'unknown', message: `${walError.message}: the write may or may not be in the log; send it again with the same idempotency keys`, error: walError.toJSON(), ids: parsed.mutations.map((m) => m.id), idempotencyKeys },
        }
      }
      // Bad input is never a server error: a record the backend refused for what it holds is a 400.
      if (walError instanceof UsageError || walError instanceof InvalidRecordError) return { status: 400, body: { durable: false, message: walError.message, error: walError.toJSON() } }
      if (walError.retriable || walError.exitCode === 5 || walError.exitCode === 7) {
        ctx.logger.warn({ event: 'produce-failed', namespace, code: walError.code, err: walError.message }, `write to ${namespace} failed: ${walError.message}`)
        return { status: 503, body: { durable: false, message: `${walError.message}; nothing was written`, error: walError.toJSON() } }
      }
      ctx.logger.error({ event: 'produce-failed', namespace, code: walError.code, err: walError.message }, `write to ${namespace} failed: ${walError.message}`)
      return { status: 500, body: { durable: false, message: walError.message, error: walError.toJSON() } }
    } finally {
      if (!settings.declared) ctx.releaseNamespace(namespace)
    }
  }

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = (request.url ?? '/').split('?')[0]!
    const method = request.method ?? 'GET'
    const produceMatch = MUTATIONS_PATH.exec(path)
    const route = produceMatch ? (produceMatch[2] === 'transactions' ? 'transactions' : produceMatch[3] === undefined ? 'produce' : 'other') : ROUTES.get(`${method} ${path}`) ?? 'other'
    const settings = ctx.config().daemon
    // Every route: a page on another site (or one that rebound its name to 127.0.0.1) gets nothing.
    const foreign = checkHost(request, settings) ?? checkOrigin(request, settings)
    if (foreign !== null) return refuse(response, route, foreign)
    const origin = request.headers.origin
    if (origin !== undefined) {
      // An origin in daemon.allowedOrigins: its pages may read the answers, after the browser's preflight.
      response.setHeader('access-control-allow-origin', origin)
      response.setHeader('vary', 'origin')
      if (method === 'OPTIONS') {
        response.writeHead(204, {
          'access-control-allow-methods': 'GET, POST',
          'access-control-allow-headers': 'authorization, content-type',
          'access-control-max-age': '600',
        })
        response.end()
        return
      }
    }
    const needsToken = path.startsWith('/v1/') || (ctx.exposed && path === '/metrics')
    const refusal = (needsToken ? checkToken(request, ctx.token()) : null) ?? (method === 'POST' ? checkContentType(request) : null)
    if (refusal !== null) return refuse(response, route, refusal)
    if (produceMatch) {
      if (produceMatch[2] === 'mutations' && produceMatch[3] !== undefined) return send(response, route, 404, { message: `no such endpoint: ${method} ${path}` })
      if (method !== 'POST') return send(response, route, 405, { message: 'use POST' }, { allow: 'POST' })
      let namespace: string
      try {
        namespace = decodeURIComponent(produceMatch[1]!)
      } catch {
        return send(response, route, 400, { durable: false, message: 'the namespace in the path is not URL-encoded correctly' })
      }
      if (route === 'transactions') {
        const query = new URL(request.url ?? '/', 'http://wal').searchParams
        if (produceMatch[3] === undefined) return produce(request, response, namespace, query.get('txn'))
        let txn: string
        try {
          txn = decodeURIComponent(produceMatch[3])
        } catch {
          return send(response, route, 400, { durable: false, message: 'the transaction id in the path is not URL-encoded correctly' })
        }
        return produce(request, response, namespace, txn, produceMatch[4] === 'parts' ? { kind: 'parts' } : { kind: 'commit', parts: query.get('parts') })
      }
      return produce(request, response, namespace)
    }
    switch (`${method} ${path}`) {
      case 'GET /healthz':
        return send(response, 'healthz', 200, { status: 'ok' })
      case 'GET /readyz': {
        const why = ctx.notReady()
        return send(response, 'readyz', why === null ? 200 : 503, why === null ? { status: 'ready' } : { status: 'not ready', reason: why })
      }
      case 'GET /metrics':
        return send(response, 'metrics', 200, await ctx.metrics.registry.metrics())
      case 'GET /v1/status':
        return send(response, 'status', 200, await ctx.status())
      case 'POST /v1/reload': {
        const result = await ctx.reload()
        return send(response, 'reload', result.ok ? 200 : 422, result)
      }
      default:
        return send(response, 'other', 404, { message: `no such endpoint: ${method} ${path}` })
    }
  }

  const listener: RequestListener = (request, response) => {
    const handling = handle(request, response).catch((error: unknown) => {
      const walError = error instanceof WalError ? error : toWalError(error)
      ctx.logger.error({ event: 'http-error', err: walError.message }, `HTTP ${request.method} ${request.url} failed: ${walError.message}`)
      send(response, 'error', 500, { message: walError.message })
    })
    pending.add(handling)
    void handling.finally(() => pending.delete(handling))
  }
  const settings = ctx.config().daemon
  const server = createServer_(settings.tls, listener)
  applyTimeouts(server, settings)
  server.maxConnections = settings.maxConnections
  return {
    server,
    inFlight: () => inFlight,
    reading: () => reading,
    settled: async () => {
      while (pending.size > 0) await Promise.allSettled([...pending])
    },
  }
}

/** How long a client may take to send its headers, and its whole request (then it is cut off). */
export function applyTimeouts(server: Server, settings: ResolvedConfig['daemon']): void {
  server.requestTimeout = settings.requestTimeoutMs
  server.headersTimeout = Math.min(settings.headersTimeoutMs, settings.requestTimeoutMs)
}

/** HTTP, or HTTPS with the daemon's certificate; with a CA, clients must present a certificate it signed. */
function createServer_(tls: ResolvedConfig['daemon']['tls'], listener: RequestListener): Server {
  // Header and request timeouts are checked this often (Node's default, 30 s, would let a slow client
  // hold its socket that much longer than daemon.headersTimeoutMs).
  const checks = { connectionsCheckingInterval: 1000 }
  if (tls === null) return createServer(checks, listener)
  let files
  try {
    files = { cert: readFileSync(tls.cert), key: readFileSync(tls.key), ca: tls.ca === null ? undefined : readFileSync(tls.ca) }
  } catch (error) {
    throw new ConfigError(`cannot read daemon.tls files: ${(error as Error).message}`, { code: 'WAL_DAEMON_TLS_FILE', cause: error })
  }
  return createHttpsServer({ ...checks, ...files, requestCert: files.ca !== undefined, rejectUnauthorized: files.ca !== undefined }, listener) as unknown as Server
}
