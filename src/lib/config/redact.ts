/**
 * The one redaction rule, used wherever configuration or what came from it can reach a person: `config
 * show` and `ns show` (text and --json), error messages and their --json form (also in HTTP answers),
 * the daemon's log lines, and target error messages (so DLQ entries, `dlq stats` and /metrics never
 * hold a secret either). Secret are:
 * - the values of keys named like secrets (password, secret, token, credential, private key, api key,
 *   sasl, authorization, cookie);
 * - the values of HTTP headers whose names look sensitive (authorization, cookie, *token*, *key*,
 *   *secret*, *auth*, *pass*);
 * - the user information of URLs (`https://user:password@host`), and the values of their query
 *   parameters named like secrets (`?access_token=…`, `&api_key=…`, `&X-Amz-Signature=…`).
 */

const secretKey = /(pass(word|phrase)?|secret|token|credential|private.?key|api.?key|sasl|authorization|cookie)/i
const sensitiveHeader = /(authorization|cookie|token|key|secret|auth|pass|session|credential)/i
/** `scheme://userinfo@`: the userinfo is everything up to the last "@" before the host. */
const urlUserinfo = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]*@/gi
const bearer = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g
/** `?name=value` / `&name=value` in a URL, where the name looks like a secret's: `$1` up to the "=", `$2` the value. */
export const SECRET_QUERY_PARAMETER = /([?&][^=&#\s"'<>]*(?:pass|secret|token|key|sig|credential|auth|session)[^=&#\s"'<>]*=)[^&#\s"'<>]+/gi

export const REDACTED = '<redacted>'

/** Whether a config key's value is a secret. */
export function isSecretKey(name: string): boolean {
  return secretKey.test(name)
}

/** Whether an HTTP header's value is a secret. */
export function isSensitiveHeader(name: string): boolean {
  return sensitiveHeader.test(name)
}

/** Whether the value at this key path is a secret: a secret key, or a sensitive header under `headers`. */
export function isSecretPath(path: readonly string[]): boolean {
  const last = path.at(-1)
  if (last === undefined) return false
  if (isSecretKey(last)) return true
  return path.at(-2) === 'headers' && isSensitiveHeader(last)
}

/** Free text (an error message, a log line) with URL user information and bearer credentials hidden. */
export function redactText(text: string): string {
  return text.replace(urlUserinfo, `$1${REDACTED}@`).replace(bearer, `$1 ${REDACTED}`).replace(SECRET_QUERY_PARAMETER, `$1${REDACTED}`)
}

/** A copy of `value` with every secret in it replaced (see the module comment). */
export function redactSecrets(value: unknown, path: readonly string[] = []): unknown {
  if (typeof value === 'string') return redactText(value)
  if (Array.isArray(value)) return value.map((item, i) => redactSecrets(item, [...path, String(i)]))
  if (value instanceof Map) return new Map([...value].map(([k, item]) => [k, redactSecrets(item, [...path, String(k)])]))
  if (value instanceof Error) return value
  const proto = value !== null && typeof value === 'object' ? (Object.getPrototypeOf(value) as unknown) : undefined
  // Plain objects only: a Date, a Buffer or a class instance is shown as it is.
  if (proto === Object.prototype || proto === null) {
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>
    for (const [k, item] of Object.entries(value as object)) {
      const keyPath = [...path, k]
      out[k] = isSecretPath(keyPath) && item !== null && typeof item !== 'object' ? REDACTED : redactSecrets(item, keyPath)
    }
    return out
  }
  return value
}
