/** `wal config validate|show`. */
import { resolve } from 'node:path'

import type { CommonOptions } from '../io/context.js'
import { ConfigError, UsageError, WalError } from '../errors.js'
import { loadConfig, writeUsedContext } from './load.js'
import { isSecretPath, redactSecrets, SECRET_QUERY_PARAMETER } from './redact.js'
import { refuseForwardingLoop } from '../targets/forwarding-loop.js'
import { findConfig } from './search.js'
import type { ResolvedConfig } from './schema.js'

export interface ConfigReport {
  valid: true
  /** The file used; null in zero-config mode. */
  path: string | null
  namespaces: string[]
  /** The context in use; null for none. */
  context: string | null
  /** What is valid but likely a mistake (a namespace nothing applies). */
  warnings: string[]
}

export async function validateConfigFile(options: CommonOptions): Promise<ConfigReport> {
  const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  // Every context must load too, not only the one in use: a typo in `prod` is found before a switch to it.
  for (const name of config.contexts) {
    if (name === config.context) continue
    try {
      await loadConfig({ configPath: options.configPath, context: name, cwd: options.io.cwd, env: { ...options.io.env, WAL_CONTEXT: undefined }, stderr: options.io.stderr })
    } catch (error) {
      if (error instanceof WalError) throw new ConfigError(`context "${name}": ${error.message}`, { code: error.code, suggestions: error.suggestions })
      throw error
    }
  }
  for (const namespace of config.namespaces.values()) refuseForwardingLoop(config, namespace)
  const warnings = [...config.warnings]
  // A default namespace set (defaultNamespace, WAL_NAMESPACE) but not declared, when namespaces are not made
  // on demand, fails every command run without -n. (The implicit "default" is not flagged: with declared
  // namespaces, naming one with -n is the usual way.)
  if (config.defaultNamespace !== 'default' && !config.autoCreateNamespaces && !config.namespaces.has(config.defaultNamespace)) {
    warnings.push(`the default namespace "${config.defaultNamespace}" is not declared: commands without -n fail (declare it, or set defaultNamespace to one of: ${[...config.namespaces.keys()].join(', ')})`)
  }
  return { valid: true, path: config.path, namespaces: [...config.namespaces.keys()], context: config.context, warnings }
}

export interface ContextList {
  /** The config file; null when none was found. */
  path: string | null
  /** The context in use, and how it was chosen. */
  current: string | null
  source: ResolvedConfig['contextSource']
  /** Each context as it resolves; `error` (and nothing else) for one that does not load. */
  contexts: Array<{ name: string; current: boolean; stateDir?: string; defaultNamespace?: string; namespaces?: string[]; error?: string }>
}

/** `wal config get-contexts`: every context of the file, each as it resolves (state dir, default namespace). */
export async function listContexts(options: CommonOptions): Promise<ContextList> {
  const load = (context?: string) => loadConfig({ configPath: options.configPath, context, cwd: options.io.cwd, env: { ...options.io.env, WAL_CONTEXT: undefined }, stderr: options.io.stderr })
  const current = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  const contexts = []
  for (const name of current.contexts) {
    try {
      const config = await load(name)
      contexts.push({ name, current: name === current.context, stateDir: config.stateDir, defaultNamespace: config.defaultNamespace, namespaces: [...config.namespaces.keys()] })
    } catch (error) {
      // One broken context does not hide the others: it is listed with what is wrong.
      if (!(error instanceof WalError)) throw error
      contexts.push({ name, current: name === current.context, error: error.message })
    }
  }
  return { path: current.path, current: current.context, source: current.contextSource, contexts }
}

/** `wal config use-context NAME`: checks the context loads, then remembers it for this config file. */
export async function useContext(options: CommonOptions & { name: string }): Promise<{ path: string; context: string; rememberedIn: string; stateDir: string }> {
  const config = await loadConfig({ configPath: options.configPath, context: options.name, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  if (config.path === null) {
    throw new UsageError('no config file was found, so there is no context to use', { suggestions: ['name one with --config FILE, or create .walrc.yaml with a "contexts:" section'] })
  }
  const rememberedIn = writeUsedContext(options.io.env, config.path, options.name)
  return { path: config.path, context: options.name, rememberedIn, stateDir: config.stateDir }
}

/** The effective configuration, defaults applied and secrets redacted. */
export async function effectiveConfig(options: CommonOptions): Promise<Record<string, unknown>> {
  const config: ResolvedConfig = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  return redactSecrets({
    source: config.path,
    context: config.context,
    defaultNamespace: config.defaultNamespace,
    stateDir: config.stateDir,
    autoCreateNamespaces: config.autoCreateNamespaces,
    defaults: config.defaults,
    namespaces: Object.fromEntries(
      [...config.namespaces.values()].map(({ name, declared: _declared, ...settings }) => [name, settings]),
    ),
    daemon: config.daemon,
  }) as Record<string, unknown>
}

/** A whole-string environment reference, `${NAME}` or `${NAME:-default}`: kept as it is. */
const ENV_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@"'<>]*)@/gi

/**
 * `config show --format yaml`: the config file in its own shape, as YAML that `wal` reads back (paste it
 * into a .walrc.yaml): checked first (an invalid file is its error, exit 3), `${VAR}` references kept
 * as written, and each secret written literally in the file replaced by a reference to an environment
 * variable named after its key path (listed at the top), so that no secret is printed.
 */
export async function configFileYaml(options: CommonOptions): Promise<string> {
  const config = await loadConfig({ configPath: options.configPath, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  if (config.path === null) return '# no config file: wal runs with its defaults (embedded namespaces, created on first produce)\n{}\n'
  const explicit = options.configPath ?? options.io.env.WAL_CONFIG
  const found = await findConfig(explicit ? resolve(options.io.cwd, explicit) : undefined, options.io.cwd)
  const variables: string[] = []
  const variableFor = (path: readonly string[]): string => {
    const name = `WAL_SECRET_${path.join('_').toUpperCase().replace(/[^A-Z0-9]+/g, '_')}`
    variables.push(name)
    return `\${${name}}`
  }
  const walk = (value: unknown, path: readonly string[]): unknown => {
    if (Array.isArray(value)) return value.map((item, i) => walk(item, [...path, String(i)]))
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, item]) => [k, walk(item, [...path, k])]))
    if (typeof value !== 'string') return value
    if (isSecretPath(path) && !ENV_REFERENCE.test(value)) return variableFor(path)
    return value
      .replace(URL_USERINFO, (whole, scheme: string, userinfo: string) => (ENV_REFERENCE.test(userinfo) ? whole : `${scheme}${variableFor([...path, 'userinfo'])}@`))
      .replace(SECRET_QUERY_PARAMETER, (whole, name: string, secret: string) => (ENV_REFERENCE.test(secret) ? whole : `${name}${variableFor([...path, name.slice(1, -1)])}`))
  }
  const shaped = walk(found?.isEmpty ? {} : (found?.config ?? {}), [])
  const { dump } = await import('js-yaml')
  const head = [`# ${config.path}, checked by wal config show --format yaml`]
  if (variables.length > 0) head.push(`# secrets written in the file are left out: set ${variables.join(', ')} before using this`)
  return `${head.join('\n')}\n${dump(shaped, { lineWidth: -1, noRefs: true })}`
}
