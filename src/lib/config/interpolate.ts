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

/** More values than any config holds: what YAML aliases or a JS config's shared objects can blow up to. */
export const MAX_CONFIG_VALUES = 100_000
/** Deeper than any config nests. */
export const MAX_CONFIG_DEPTH = 64

/**
 * Returns a copy of `value` with every string interpolated; `describe(path)` names a key for errors. A
 * value that contains itself (a self-referencing YAML alias, a circular JS object), one that expands to
 * more than MAX_CONFIG_VALUES values (a billion laughs) or nests deeper than MAX_CONFIG_DEPTH is a
 * config error naming the key.
 */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, describe: (path: string) => string): unknown {
  let count = 0
  const ancestors = new Set<object>()
  const walk = (item: unknown, path: string, depth: number): unknown => {
    if (++count > MAX_CONFIG_VALUES) {
      throw new ConfigError(`${describe(path)}: the config expands to more than ${MAX_CONFIG_VALUES} values (YAML aliases repeated within each other?)`, {
        code: 'WAL_CONFIG_INVALID',
        suggestions: ['write the repeated parts out, or use fewer nested aliases'],
      })
    }
    if (typeof item === 'string') return interpolateString(item, env, () => describe(path))
    if (item === null || typeof item !== 'object') return item
    if (ancestors.has(item)) {
      throw new ConfigError(`${describe(path)}: the value contains itself (a self-referencing YAML alias, or a circular object)`, {
        code: 'WAL_CONFIG_INVALID',
        suggestions: ['a config is a tree: replace the reference with the value it stands for'],
      })
    }
    if (depth > MAX_CONFIG_DEPTH) {
      throw new ConfigError(`${describe(path)}: nested more than ${MAX_CONFIG_DEPTH} levels deep`, { code: 'WAL_CONFIG_INVALID' })
    }
    ancestors.add(item)
    try {
      if (Array.isArray(item)) return item.map((element, i) => walk(element, `${path}[${i}]`, depth + 1))
      // Object.create(null): a key like "__proto__" in a config is a key, never a prototype.
      const out = Object.create(null) as Record<string, unknown>
      for (const [k, element] of Object.entries(item)) out[k] = walk(element, path ? `${path}.${k}` : k, depth + 1)
      return out
    } finally {
      ancestors.delete(item)
    }
  }
  return walk(value, '', 0)
}
