/**
 * The daemon's HTTP API on node:http: the write path, health, readiness, metrics, status and reload.
 * Load is shed, never queued without bound: past `maxInFlight` write requests the answer is 429 with
 * Retry-After, while draining 503; bodies past `maxBodyBytes` get 413 and are not read.
 */
import { timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'

import { namespaceSettings } from '../config/load.js'
import type { ResolvedConfig } from '../config/schema.js'
import { ConfigError, DurabilityUnknownError, toWalError, UnknownNamespaceError, UsageError, WalError } from '../errors.js'
import type { LogPool } from './consumers.js'
import { durableAnswer, parseProduceBody, partialAnswer, type ProduceAnswer } from './http-produce.js'
import type { Logger } from './logger.js'
import type { DaemonMetrics } from './metrics.js'

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
}

const MUTATIONS_PATH = /^\/v1\/namespaces\/([^/]+)\/mutations$/

class BodyTooLarge extends Error {}

function readBody(request: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBytes) {
        request.removeAllListeners('data')
        request.resume()
        reject(new BodyTooLarge())
        return
      }
      chunks.push(chunk)
    })
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    request.on('error', reject)
    // A client that goes away (or is cut off by requestTimeout) mid-body: settle, so the slot is freed.
    request.on('close', () => {
      if (!request.complete) reject(new Error('client went away'))
    })
  })
}

export interface ApiServer {
  server: Server
  /** Write requests being handled now. */
  inFlight(): number
  /** Resolves once every write request in progress has had its answer. */
  settled(): Promise<void>
}

export function createApiServer(ctx: ApiContext): ApiServer {
  let inFlight = 0
  const pending = new Set<Promise<void>>()

  const send = (response: ServerResponse, route: string, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    ctx.metrics.httpRequests.inc({ route, code: String(status) })
    if (response.headersSent || response.destroyed) return
    const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`
    response.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; version=0.0.4' : 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
    response.end(text)
  }

  const authorized = (request: IncomingMessage): boolean => {
    const token = ctx.config().daemon.token
    if (token === null) return true
    const given = Buffer.from(String(request.headers.authorization ?? ''))
    const wanted = Buffer.from(`Bearer ${token}`)
    return given.length === wanted.length && timingSafeEqual(given, wanted)
  }

  const produce = async (request: IncomingMessage, response: ServerResponse, namespace: string): Promise<void> => {
    const route = 'produce'
    const { maxInFlight, maxBodyBytes } = ctx.config().daemon
    if (ctx.draining()) {
      ctx.metrics.httpShed.inc({ reason: 'draining' })
      send(response, route, 503, { durable: false, message: 'the daemon is stopping; nothing was written' }, { 'retry-after': '5', connection: 'close' })
      return
    }
    if (inFlight >= maxInFlight) {
      ctx.metrics.httpShed.inc({ reason: 'in-flight' })
      send(response, route, 429, { durable: false, message: `too many writes at once (limit ${maxInFlight}); nothing was written, try again shortly` }, { 'retry-after': '1', connection: 'close' })
      return
    }
    const length = Number(request.headers['content-length'])
    if (Number.isFinite(length) && length > maxBodyBytes) {
      ctx.metrics.httpShed.inc({ reason: 'too-large' })
      send(response, route, 413, { durable: false, message: `the body is ${length} bytes, above the ${maxBodyBytes}-byte limit (daemon.maxBodyBytes); nothing was written` }, { connection: 'close' })
      return
    }
    inFlight++
    const startedMs = performance.now()
    try {
      let text: string
      try {
        text = await readBody(request, maxBodyBytes)
      } catch (error) {
        if (error instanceof BodyTooLarge) {
          ctx.metrics.httpShed.inc({ reason: 'too-large' })
          send(response, route, 413, { durable: false, message: `the body is above the ${maxBodyBytes}-byte limit (daemon.maxBodyBytes); nothing was written` }, { connection: 'close' })
        }
        return
      }
      const answer = await write(namespace, text, request.headers['content-type'])
      if (answer.status === 200) ctx.metrics.produceSeconds.observe({ namespace }, (performance.now() - startedMs) / 1000)
      send(response, route, answer.status, answer.body, answer.status === 503 ? { 'retry-after': '1' } : {})
    } finally {
      inFlight--
    }
  }

  const write = async (namespace: string, text: string, contentType: string | undefined): Promise<ProduceAnswer> => {
    const config = ctx.config()
    let settings
    try {
      settings = namespaceSettings(config, namespace)
    } catch (error) {
      const walError = toWalError(error)
      return { status: error instanceof UnknownNamespaceError ? 404 : 400, body: { durable: false, message: walError.message, error: walError.toJSON() } }
    }
    const parsed = parseProduceBody(text, contentType, namespace, config, Date.now())
    if (!parsed.ok) return parsed.answer
    try {
      const log = await ctx.logs.get(settings)
      // SQS writes entries one by one, and Kafka refuses a record too large for its topic on its own:
      // some may land while others fail, and each is answered for.
      const results = await log.append(parsed.mutations, { perEntryErrors: settings.backend !== 'embedded' })
      ctx.metrics.produced.inc({ namespace }, results.filter((r) => !r.duplicate && r.error === undefined).length)
      ctx.produced(namespace)
      if (results.some((r) => r.error !== undefined)) return partialAnswer(results, parsed.mutations, namespace, parsed.batch)
      return durableAnswer(results, namespace, parsed.batch)
    } catch (error) {
      const walError = toWalError(error)
      if (walError instanceof DurabilityUnknownError) {
        const idempotencyKeys = parsed.mutations.map((m) => m.idempotencyKey)
        return {
          status: 504,
          body: { durable: 'unknown', message: `${walError.message}: the write may or may not be in the log; send it again with the same idempotency keys`, error: walError.toJSON(), ids: parsed.mutations.map((m) => m.id), idempotencyKeys },
        }
      }
      if (walError instanceof UsageError) return { status: 400, body: { durable: false, message: walError.message, error: walError.toJSON() } }
      if (walError.retriable || walError.exitCode === 5 || walError.exitCode === 7) {
        ctx.logger.warn({ event: 'produce-failed', namespace, code: walError.code, err: walError.message }, `write to ${namespace} failed: ${walError.message}`)
        return { status: 503, body: { durable: false, message: `${walError.message}; nothing was written`, error: walError.toJSON() } }
      }
      ctx.logger.error({ event: 'produce-failed', namespace, code: walError.code, err: walError.message }, `write to ${namespace} failed: ${walError.message}`)
      return { status: 500, body: { durable: false, message: walError.message, error: walError.toJSON() } }
    }
  }

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = (request.url ?? '/').split('?')[0]!
    const method = request.method ?? 'GET'
    const produceMatch = MUTATIONS_PATH.exec(path)
    if (produceMatch) {
      if (method !== 'POST') return send(response, 'produce', 405, { message: 'use POST' }, { allow: 'POST' })
      if (!authorized(request)) return send(response, 'produce', 401, { durable: false, message: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer' })
      let namespace: string
      try {
        namespace = decodeURIComponent(produceMatch[1]!)
      } catch {
        return send(response, 'produce', 400, { durable: false, message: 'the namespace in the path is not URL-encoded correctly' })
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
        if (!authorized(request)) return send(response, 'status', 401, { message: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer' })
        return send(response, 'status', 200, await ctx.status())
      case 'POST /v1/reload': {
        if (!authorized(request)) return send(response, 'reload', 401, { message: 'missing or wrong bearer token' }, { 'www-authenticate': 'Bearer' })
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
  const server = createServer_(ctx.config().daemon.tls, listener)
  server.requestTimeout = ctx.config().daemon.requestTimeoutMs
  server.headersTimeout = Math.min(60_000, server.requestTimeout)
  return {
    server,
    inFlight: () => inFlight,
    settled: async () => {
      while (pending.size > 0) await Promise.allSettled([...pending])
    },
  }
}

/** HTTP, or HTTPS with the daemon's certificate; with a CA, clients must present a certificate it signed. */
function createServer_(tls: ResolvedConfig['daemon']['tls'], listener: RequestListener): Server {
  if (tls === null) return createServer(listener)
  let files
  try {
    files = { cert: readFileSync(tls.cert), key: readFileSync(tls.key), ca: tls.ca === null ? undefined : readFileSync(tls.ca) }
  } catch (error) {
    throw new ConfigError(`cannot read daemon.tls files: ${(error as Error).message}`, { code: 'WAL_DAEMON_TLS_FILE', cause: error })
  }
  return createHttpsServer({ ...files, requestCert: files.ca !== undefined, rejectUnauthorized: files.ca !== undefined }, listener) as unknown as Server
}
