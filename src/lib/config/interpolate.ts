/** `${VAR}` and `${VAR:-default}` in config string values; `$${` is a literal `${`. */
import { ConfigError } from '../errors.js'

const pattern = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

function interpolateString(text: string, env: NodeJS.ProcessEnv, where: () => string): string {
  return text.replace(pattern, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${'
    const value = env[name!]
    if (value !== undefined && value !== '') return value
    if (fallback !== undefined) return fallback
    throw new ConfigError(`${where()}: environment variable ${name} is not set`, {
      details: { variable: name },
      suggestions: [`export ${name}=…`, `or give a default: \${${name}:-value}`],
    })
  })
}

/** Returns a copy of `value` with every string interpolated; `describe(path)` names a key for errors. */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, describe: (path: string) => string, path = ''): unknown {
  if (typeof value === 'string') return interpolateString(value, env, () => describe(path))
  if (Array.isArray(value)) return value.map((item, i) => interpolateEnv(item, env, describe, `${path}[${i}]`))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, item] of Object.entries(value)) out[k] = interpolateEnv(item, env, describe, path ? `${path}.${k}` : k)
    return out
  }
  return value
}
