/**
 * The HTTP target: POSTs each mutation to an endpoint with Node's fetch. The mutation id travels as
 * `Idempotency-Key`, so the endpoint can drop duplicates from retries and replays.
 * 2xx: applied. 429, 5xx and timeouts: retryable. Other 4xx: fatal (the request itself is wrong).
 * Refused or unreachable: infrastructure (the consumer pauses this target instead of burning attempts).
 */
import type { Mutation } from '../../envelope/envelope.js'
import { TargetError, type ApplyContext, type Target } from '../target.js'

export interface HttpTargetOptions {
  name: string
  url: string
  method?: 'POST' | 'PUT'
  timeoutMs: number
  headers?: Record<string, string>
}

const INFRASTRUCTURE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNRESET', 'UND_ERR_SOCKET'])

export class HttpTarget implements Target {
  readonly name: string
  /** The endpoint without user information: what is requested, and what error messages name. */
  private readonly url: string
  /** From the URL's user information (fetch refuses credentials in a URL): sent as Basic auth. */
  private readonly basicAuth: Record<string, string>

  constructor(private readonly options: HttpTargetOptions) {
    this.name = options.name
    const url = new URL(options.url)
    this.basicAuth =
      url.username === '' && url.password === ''
        ? {}
        : { authorization: `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}` }
    url.username = ''
    url.password = ''
    this.url = url.href
  }

  async apply(mutation: Mutation, context: ApplyContext): Promise<void> {
    const headers: Record<string, string> = {
      ...this.basicAuth,
      ...this.options.headers,
      ...mutation.headers,
      'idempotency-key': mutation.id,
      'x-wal-namespace': mutation.namespace,
      'x-wal-key': encodeURIComponent(mutation.key),
      'x-wal-created-at': new Date(mutation.createdAtMs).toISOString(),
      'x-wal-attempt': String(context.attempt),
      'content-type': mutation.payload.encoding === 'json' ? 'application/json' : 'application/octet-stream',
    }
    const body = mutation.payload.encoding === 'json' ? mutation.payload.json : mutation.payload.bytes
    const timeout = AbortSignal.timeout(this.options.timeoutMs)
    let response: Response
    try {
      response = await fetch(this.url, {
        method: this.options.method ?? 'POST',
        headers,
        body,
        signal: AbortSignal.any([timeout, context.signal]),
      })
      // Read the body so the connection is reused, and for the error message.
      const text = await response.text()
      if (response.ok) return
      const status = response.status
      const detail = text.trim().slice(0, 200)
      throw new TargetError(`${this.url} answered ${status}${detail ? `: ${detail}` : ''}`, {
        errorClass: status === 429 || status >= 500 || status === 408 ? 'retryable' : 'fatal',
        code: `HTTP_${status}`,
      })
    } catch (error) {
      if (error instanceof TargetError) throw error
      if (timeout.aborted) {
        throw new TargetError(`${this.url} did not answer within ${this.options.timeoutMs}ms`, { errorClass: 'retryable', code: 'TIMEOUT', cause: error })
      }
      const cause = (error as { cause?: { code?: string; message?: string } }).cause
      const code = cause?.code ?? (error as { code?: string }).code ?? 'FETCH_FAILED'
      throw new TargetError(`${this.url}: ${cause?.message ?? (error as Error).message}`, {
        errorClass: INFRASTRUCTURE_CODES.has(code) ? 'infrastructure' : 'retryable',
        code,
        cause: error,
      })
    }
  }

  async close(): Promise<void> {}
}
