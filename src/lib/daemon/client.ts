/**
 * Requests from the `wal daemon` commands to the daemon's HTTP API, over HTTPS (and mTLS) when
 * daemon.tls is set: node:http(s) rather than fetch, which cannot be given a CA or a client certificate.
 */
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest, type RequestOptions } from 'node:https'

import type { DaemonSettings } from '../config/daemon.js'
import { ConfigError } from '../errors.js'

export interface DaemonResponse {
  status: number
  text: string
}

function tlsOptions(tls: NonNullable<DaemonSettings['tls']>): RequestOptions {
  try {
    const cert = readFileSync(tls.cert)
    // The daemon's own certificate is a trust anchor too, so a self-signed one works.
    return { ca: [cert, ...(tls.ca === null ? [] : [readFileSync(tls.ca)])], cert, key: readFileSync(tls.key) }
  } catch (error) {
    throw new ConfigError(`cannot read daemon.tls files: ${(error as Error).message}`, { code: 'WAL_DAEMON_TLS_FILE', cause: error })
  }
}

/** One request; rejects on a network or TLS error, or after timeoutMs. `token`: the bearer token to send. */
export function daemonRequest(settings: DaemonSettings, url: string, options: { method: string; timeoutMs: number; token: string | null }): Promise<DaemonResponse> {
  const target = new URL(url)
  const headers: Record<string, string> = options.token === null ? {} : { authorization: `Bearer ${options.token}` }
  // The daemon takes POSTs only as JSON (what a cross-site form cannot send).
  if (options.method === 'POST') Object.assign(headers, { 'content-type': 'application/json', 'content-length': '0' })
  const base: RequestOptions = { method: options.method, headers, timeout: options.timeoutMs }
  return new Promise((resolve, reject) => {
    const onResponse = (response: import('node:http').IncomingMessage): void => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (text += chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }))
      response.on('error', reject)
    }
    const request =
      target.protocol === 'https:'
        ? httpsRequest(target, { ...base, ...(settings.tls === null ? {} : tlsOptions(settings.tls)) }, onResponse)
        : httpRequest(target, base, onResponse)
    request.on('timeout', () => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)))
    request.on('error', reject)
    request.end()
  })
}
