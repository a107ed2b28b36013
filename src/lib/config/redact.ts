/** Hides secrets in configuration before it is shown. */

const secretKey = /(pass(word|phrase)?|secret|token|credential|private.?key|api.?key|sasl|authorization|cookie)/i

export const REDACTED = '<redacted>'

/** A copy of `value` with the values of secret-looking keys replaced. */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, item] of Object.entries(value)) {
      out[k] = secretKey.test(k) && item !== null && typeof item !== 'object' ? REDACTED : redactSecrets(item)
    }
    return out
  }
  return value
}
