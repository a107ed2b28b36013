/**
 * The HTTP target: POSTs each mutation to an endpoint with Node's fetch. The mutation id travels as
 * `Idempotency-Key`, so the endpoint can drop duplicates from retries and replays. The body is the
 * payload, or with `body: envelope` the mutation as the next hop's log takes it (another wal daemon's
 * write API), headers and all.
 * 2xx: applied. 429, 5xx and timeouts: retryable. Other 4xx: fatal (the request itself is wrong).
 * Refused or unreachable: infrastructure (the consumer pauses this target instead of burning attempts).
 */
import { encodeEnvelope, type Mutation } from '../../envelope/envelope.js'
import { forwardedCopy, TargetError, type ApplyContext, type Target } from '../target.js'

export interface HttpTargetOptions {
  name: string
  url: string
  method?: 'POST' | 'PUT'
  /** `payload` (default): the payload is the body, the headers HTTP headers. `envelope`: the envelope is. */
  body?: 'payload' | 'envelope'
  timeoutMs: number
  headers?: Record<string, string>
}

/**
 * Headers the connection itself owns: fetch drops a Host it is given, hangs on a Content-Length that is
 * not the body's, and refuses the others. Neither a mutation nor the config can set them.
 */
export const CONNECTION_HEADERS: ReadonlySet<string> = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect'])

/** Headers wal sets on every request: the same name in a mutation (in any case) is replaced, never merged. */
const WAL_HEADERS = ['idempotency-key', 'x-wal-namespace', 'x-wal-key', 'x-wal-created-at', 'x-wal-attempt', 'content-type'] as const

/** Why fetch cannot send this header, or null: a name must be a token, a value Latin-1 without CR, LF or NUL. */
export function unsendableHeader(name: string, value: string): string | null {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) return 'its name is not an HTTP token'
  if (CONNECTION_HEADERS.has(name.toLowerCase())) return 'HTTP itself sets it (it frames the request or the connection); send it under another name, or in the payload'
  // fetch (undici) keeps headers in a plain object on the way out, where this name sets the prototype.
  if (name.toLowerCase() === '__proto__') return "Node's HTTP client would drop it without a word; send it under another name, or in the payload"
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code > 0xff) {
      const char = String.fromCodePoint(value.codePointAt(i)!)
      return `its value has ${JSON.stringify(char)} (U+${value.codePointAt(i)!.toString(16).toUpperCase().padStart(4, '0')}) at index ${i}, and HTTP header values carry only Latin-1 (U+0000 to U+00FF); percent-encode it, or send it in the payload`
    }
    if (code === 0x0a || code === 0x0d || code === 0x00) return `its value has a line break or NUL at index ${i}`
  }
  return null
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
    const envelope = this.options.body === 'envelope'
    // A header HTTP cannot carry fails every time it is sent: fatal, so it is dead-lettered with why.
    if (!envelope) for (const [name, value] of Object.entries(mutation.headers)) {
      const problem = unsendableHeader(name, value)
      if (problem !== null) {
        throw new TargetError(`header ${JSON.stringify(name)} of the mutation cannot be sent over HTTP: ${problem}`, { errorClass: 'fatal', code: 'HTTP_HEADER_INVALID' })
      }
    }
    // A Headers object, not a record: names are case-insensitive, so a mutation's "Idempotency-Key" must
    // not merge into wal's.
    const headers = new Headers({ ...this.basicAuth, ...this.options.headers })
    // With body: envelope the mutation's headers travel in the body, not as HTTP headers.
    const names = envelope ? [] : Object.keys(mutation.headers)
    // A mutation's header replaces a configured one of the same name; two of its own that differ only in
    // case are sent as HTTP joins them ("a, b").
    for (const name of names) headers.delete(name)
    for (const name of names) headers.append(name, mutation.headers[name]!)
    const own: Record<(typeof WAL_HEADERS)[number], string> = {
      'idempotency-key': mutation.id,
      'x-wal-namespace': mutation.namespace,
      'x-wal-key': encodeURIComponent(mutation.key),
      'x-wal-created-at': new Date(mutation.createdAtMs).toISOString(),
      'x-wal-attempt': String(context.attempt),
      'content-type': envelope || mutation.payload.encoding === 'json' ? 'application/json' : 'application/octet-stream',
    }
    for (const name of WAL_HEADERS) headers.set(name, own[name])
    const body = envelope ? envelopeOf(mutation) : mutation.payload.encoding === 'json' ? mutation.payload.json : mutation.payload.bytes
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
      // fetch refused to build the request (nothing was sent): sending it again changes nothing.
      if (error instanceof TypeError && (cause === undefined || cause.code === 'UND_ERR_INVALID_ARG' || cause.code === 'UND_ERR_NOT_SUPPORTED')) {
        throw new TargetError(`the request to ${this.url} cannot be made: ${error.message}`, { errorClass: 'fatal', code: 'HTTP_REQUEST_INVALID', cause: error })
      }
      // fetch refuses ports browsers block (e.g. 1, 9, 25, 6000): no retry will ever reach them.
      if (cause?.message === 'bad port') {
        throw new TargetError(`${this.url}: fetch refuses to connect to port ${new URL(this.url).port} (a port browsers block); serve the endpoint on another port`, { errorClass: 'fatal', code: 'HTTP_PORT_BLOCKED', cause: error })
      }
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

/** The mutation as a new entry of the next hop's log (see forwardedCopy), without this log's position. */
function envelopeOf(mutation: Mutation): string {
  const c = forwardedCopy(mutation)
  return encodeEnvelope({ id: c.id, namespace: c.namespace, key: c.key, payload: c.payload, headers: c.headers, createdAtMs: c.createdAtMs, notBeforeMs: null, target: null, idempotencyKey: c.idempotencyKey, attempts: 0, failures: [] })
}
