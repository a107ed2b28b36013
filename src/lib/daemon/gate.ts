/**
 * Who may call the daemon's HTTP API, decided before a request's body is read: the Host it names (a
 * DNS-rebinding page names its own host), the Origin a browser sends, the bearer token, and the content
 * type of a write (a cross-site form can send only text/plain, multipart or urlencoded bodies without
 * asking first). Also the rules for where the daemon may listen.
 */
import { timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'

import type { DaemonSettings } from '../config/daemon.js'
import { ConfigError } from '../errors.js'

/** A refusal: the status and the message the client gets. */
export interface Refusal {
  status: number
  message: string
  headers?: Record<string, string>
}

/** Content types a write (or any POST) may carry. */
export const WRITE_CONTENT_TYPES = ['application/json', 'application/x-ndjson'] as const

export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  if (name === 'localhost' || name.endsWith('.localhost')) return true
  if (isIP(name) === 4) return name.startsWith('127.')
  if (isIP(name) === 6) return name === '::1' || name.startsWith('::ffff:127.')
  return false
}

/** The host name in a Host header ("example.com:7460", "[::1]:7460"), lowercase, without the port. */
function hostName(header: string): string {
  const trimmed = header.trim().toLowerCase()
  // "[::1" without its bracket is no address: kept whole, so that it is refused.
  if (trimmed.startsWith('[')) return trimmed.includes(']') ? trimmed.slice(1, trimmed.indexOf(']')) : trimmed
  const colon = trimmed.lastIndexOf(':')
  return colon === -1 ? trimmed : trimmed.slice(0, colon)
}

/**
 * The Host header must name a loopback name, an IP address (a rebinding page can only name a host
 * name: its own), daemon.host, or one of daemon.allowedHosts.
 */
export function checkHost(request: IncomingMessage, settings: DaemonSettings): Refusal | null {
  const header = request.headers.host
  if (header === undefined || header.trim() === '') return { status: 400, message: 'the request has no Host header' }
  const name = hostName(header)
  if (isLoopbackHost(name) || isIP(name) !== 0) return null
  // The name it was told to listen on is its own.
  if (settings.host.toLowerCase() === name || settings.allowedHosts.some((allowed) => allowed.toLowerCase() === name)) return null
  return {
    status: 421,
    message: `Host "${name}" is not one this daemon answers to (loopback names, IP addresses and daemon.allowedHosts); nothing was done`,
  }
}

/** Requests from a web page carry an Origin header; only daemon.allowedOrigins may call. */
export function checkOrigin(request: IncomingMessage, settings: DaemonSettings): Refusal | null {
  const origin = request.headers.origin
  if (origin === undefined) return null
  if (settings.allowedOrigins.includes(origin)) return null
  return { status: 403, message: `requests from origin "${origin}" are refused (allow it in daemon.allowedOrigins); nothing was done` }
}

/** The token in effect: none when auth is off. */
export function checkToken(request: IncomingMessage, token: string | null): Refusal | null {
  if (token === null) return null
  // The scheme is case-insensitive (RFC 9110): "bearer" is as good as "Bearer". The token is compared in
  // constant time.
  const match = /^bearer[ \t]+(.*)$/is.exec(String(request.headers.authorization ?? ''))
  const given = Buffer.from(match?.[1] ?? '')
  const wanted = Buffer.from(token)
  if (given.length === wanted.length && timingSafeEqual(given, wanted)) return null
  return { status: 401, message: 'missing or wrong bearer token (see daemon/token in the state directory)', headers: { 'www-authenticate': 'Bearer' } }
}

/** A POST must say it sends JSON or NDJSON: what a cross-site form cannot. */
export function checkContentType(request: IncomingMessage): Refusal | null {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  if ((WRITE_CONTENT_TYPES as readonly string[]).includes(type)) return null
  return {
    status: 415,
    message: `${type === '' ? 'no Content-Type' : `Content-Type "${type}"`} is not accepted: send ${WRITE_CONTENT_TYPES.join(' or ')}; nothing was done`,
  }
}

/**
 * Where the daemon may listen with the auth it has: without a token only on loopback; beyond loopback
 * only with TLS or daemon.allowPlainHttp (--allow-plain-http). Returns warnings to log.
 */
export function checkListen(host: string, settings: DaemonSettings): string[] {
  if (isLoopbackHost(host)) return settings.auth === 'none' ? ['the HTTP API asks for no token (--no-auth / daemon.auth: none): any local process can write'] : []
  if (settings.auth === 'none') {
    throw new ConfigError(`the daemon may run without a token (--no-auth, daemon.auth: none) only on loopback, not on ${host}`, {
      code: 'WAL_DAEMON_INSECURE',
      suggestions: ['listen on 127.0.0.1 (the default), or drop --no-auth / daemon.auth: none'],
    })
  }
  if (settings.tls === null && !settings.allowPlainHttp) {
    throw new ConfigError(`listening on ${host} without TLS would send the bearer token and every write in clear text`, {
      code: 'WAL_DAEMON_INSECURE',
      suggestions: ['set daemon.tls (cert and key)', 'or, on a network you trust, pass --allow-plain-http (daemon.allowPlainHttp: true)'],
    })
  }
  return [
    `the HTTP API listens beyond loopback (${host})${settings.tls === null ? ' without TLS' : ''}: anyone who can reach it and holds the token can write`,
  ]
}
