/**
 * Finds, reads, interpolates and validates the configuration. With no file anywhere, wal runs in
 * zero-config mode: embedded namespaces created on first produce in the local state directory.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import type { Writable } from 'node:stream'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import * as v from 'valibot'

import { escapeControl } from '../cli/render.js'
import { closestName, editDistance } from '../edit-distance.js'
import { NAMESPACE_PATTERN } from '../envelope/envelope.js'
import { checkStateDir } from '../state-dir.js'
import { ConfigError, InterruptedError, UnknownNamespaceError, UsageError } from '../errors.js'
import { expectedOf, receivedOf } from '../validation.js'
import { cassandraCluster, expandHome, kafkaCluster, sqsCluster } from './clusters.js'
import { resolveDaemonSettings } from './daemon.js'
import { isSecretPath, REDACTED, redactText } from './redact.js'
import { interpolateEnv } from './interpolate.js'
import { findConfig } from './search.js'
import {
  ConfigSchema,
  DEFAULTS,
  type ConfigFile,
  type KafkaLogSettings,
  type NamespaceConfig,
  type NamespaceSettings,
  type ResolvedConfig,
  type RetryPolicy,
  type SqsLogSettings,
  type TargetSettings,
} from './schema.js'

export interface LoadConfigOptions {
  /** An explicit file (`--config`, `WAL_CONFIG`); otherwise the usual places are searched. */
  configPath?: string
  /** Where the search starts. */
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Where warnings go (a state directory others can read). */
  stderr?: Writable
  /** `--context`: the context of the file to use (else WAL_CONTEXT, else `wal config use-context`'s). */
  context?: string
}

function knownKeysAt(path: readonly string[], input: unknown): string[] {
  // Walks the schema (and the input beside it) along the path to list the keys allowed where an unknown
  // one was found. A variant (a target by its type) is followed into the option the input chose.
  let schema: v.GenericSchema | undefined = ConfigSchema
  let value = input
  const unwrap = (s: v.GenericSchema | undefined): v.GenericSchema | undefined => {
    const inner = (s as { wrapped?: v.GenericSchema } | undefined)?.wrapped ?? s
    if (inner && 'options' in inner && 'key' in inner) {
      const key = inner.key as string
      const chosen = (value as Record<string, unknown> | undefined)?.[key]
      const options = inner.options as Array<{ entries: Record<string, { literal?: unknown }> }>
      return options.find((o) => o.entries[key]?.literal === chosen) as v.GenericSchema | undefined
    }
    return inner
  }
  for (const segment of path) {
    const inner = unwrap(schema)
    if (inner && 'entries' in inner) schema = (inner.entries as Record<string, v.GenericSchema>)[segment]
    else if (inner && 'value' in inner) schema = inner.value as v.GenericSchema
    else return []
    value = (value as Record<string, unknown> | undefined)?.[segment]
  }
  const inner = unwrap(schema)
  return inner && 'entries' in inner ? Object.keys(inner.entries as object) : []
}

function isSecretUrl(value: unknown): boolean {
  return typeof value === 'string' && redactText(value) !== value
}

function secretShape(value: unknown): string {
  return typeof value === 'string' ? `${REDACTED} (${value.length} characters)` : REDACTED
}

function describeIssue(file: string, issue: v.BaseIssue<unknown>, input: unknown): ConfigError {
  const keys = (issue.path ?? []).map((item) => String(item.key))
  const keyPath = keys.join('.')
  if (issue.type === 'strict_object' && issue.expected === 'never') {
    const unknown = keys.at(-1)!
    const known = knownKeysAt(keys.slice(0, -1), input)
    const close = known.filter((k) => editDistance(k.toLowerCase(), unknown.toLowerCase()) <= 2)
    return new ConfigError(`${file}: unknown key "${keyPath}"`, {
      details: { file, keyPath, expected: known, found: unknown },
      suggestions: [
        ...(close.length > 0 ? [`did you mean "${[...keys.slice(0, -1), close[0]].join('.')}"?`] : []),
        `allowed here: ${known.join(', ')}`,
      ],
    })
  }
  const expected = expectedOf(issue)
  // A secret is never echoed, not even a wrong one: say what kind of value it was.
  const found = isSecretPath(keys) || isSecretUrl(issue.input) ? secretShape(issue.input) : receivedOf(issue)
  return new ConfigError(`${file}: key "${keyPath || '(top level)'}": expected ${expected}, found ${found}`, {
    details: { file, keyPath, expected, found },
    suggestions: ['see .walrc.example for every key, its unit and its default'],
  })
}

/** The target of a namespace that names none: the embedded key-value store, <stateDir>/kv/<namespace>.db. */
function defaultKvTarget(stateDir: string, namespace: string, retry: RetryPolicy): TargetSettings {
  return { name: 'kv', type: 'kv', path: join(stateDir, 'kv', `${namespace}.db`), retry, ratePerSec: null }
}

export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  if (env.WAL_HOME) return resolve(expandHome(env.WAL_HOME))
  const stateHome = env.XDG_STATE_HOME ? expandHome(env.XDG_STATE_HOME) : join(homedir(), '.local', 'state')
  return join(stateHome, 'wal')
}

/** A rate as operators write it: "100/s", "6000/m", "50000/h". */
export const RATE_PATTERN = /^\d+(\.\d+)?\/(s|m|h)$/

/** A --rate flag in applies per second; undefined stays unlimited. Zero or nonsense is a usage error. */
export function rateFlag(text: string | undefined): number | null {
  if (text === undefined) return null
  const perSecond = RATE_PATTERN.test(text) ? parseRate(text)! : NaN
  if (!(perSecond > 0)) throw new UsageError(`--rate "${text}" is not a rate above zero`, { suggestions: ['use e.g. --rate 100/s, 6000/m or 50000/h'] })
  return perSecond
}

/** "100/s" → 100, "6000/m" → 100, a number stays as it is. */
export function parseRate(rate: string | number | undefined): number | null {
  if (rate === undefined) return null
  if (typeof rate === 'number') return rate
  const [amount, unit] = rate.split('/')
  return Number(amount) / (unit === 'h' ? 3600 : unit === 'm' ? 60 : 1)
}

function targetSettings(namespace: string, ns: NamespaceConfig, retry: RetryPolicy, stateDir: string, configPath: string, file: ConfigFile): TargetSettings[] {
  const base = dirname(configPath)
  const paths = (p: string): string => (p === '-' ? p : isAbsolute(expandHome(p)) ? expandHome(p) : resolve(base, p))
  // A namespace that names no targets has the embedded key-value store, as an undeclared one does;
  // `targets: []` (or {}) says: none.
  if (ns.targets === undefined) return [defaultKvTarget(stateDir, namespace, retry)]
  return Object.entries(ns.targets).map(([name, t]) => {
    const common = { name, retry: { ...retry, ...t.retry }, ratePerSec: parseRate(t.rate) }
    switch (t.type) {
      case 'kv':
        return { ...common, type: 'kv', path: t.path ? paths(t.path) : join(stateDir, 'kv', `${namespace}.db`) }
      case 'http':
        return { ...common, type: 'http', url: t.url, method: t.method ?? 'POST', body: t.body ?? httpBodyDefault(t.url), timeoutMs: t.timeoutMs ?? DEFAULTS.httpTimeoutMs, headers: t.headers ?? {} }
      case 'file':
        return { ...common, type: 'file', path: paths(t.path) }
      case 'kafka':
        return {
          ...common,
          type: 'kafka',
          topic: t.topic,
          timeoutMs: t.timeoutMs ?? DEFAULTS.httpTimeoutMs,
          compression: t.compression ?? 'none',
          partitioner: t.partitioner ?? 'murmur2',
          cluster: kafkaCluster(file, t.cluster, `${configPath}: key "namespaces.${namespace}.targets.${name}.cluster"`, base),
        }
      case 'sqs':
        return {
          ...common,
          type: 'sqs',
          queue: t.queue,
          fifo: t.fifo ?? false,
          cluster: sqsCluster(file, t.cluster, `${configPath}: key "namespaces.${namespace}.targets.${name}.cluster"`),
        }
      case 'cassandra': {
        const where = `${configPath}: key "namespaces.${namespace}.targets.${name}`
        const cluster = cassandraCluster(file, t.cluster, `${where}.cluster"`, base)
        for (const [table, declared] of Object.entries(t.tables ?? {})) {
          const unknown = [...declared.partitionKey, ...(declared.clusteringKey ?? [])].filter((c) => !(c in declared.columns))
          if (unknown.length > 0) {
            throw new ConfigError(`${where}.tables.${table}": key column ${unknown.map((c) => `"${c}"`).join(', ')} not among its columns`, {
              suggestions: [`add it under namespaces.${namespace}.targets.${name}.tables.${table}.columns with its CQL type`],
            })
          }
        }
        const keyspace = t.keyspace ?? cluster.keyspace
        if (keyspace === null) {
          throw new ConfigError(`${where}": a Cassandra target needs a keyspace`, {
            suggestions: [`set namespaces.${namespace}.targets.${name}.keyspace, or clusters.cassandra.${t.cluster}.keyspace`],
          })
        }
        return {
          ...common,
          type: 'cassandra',
          cluster,
          keyspace,
          consistency: t.consistency ?? DEFAULTS.cassandra.consistency,
          concurrency: t.concurrency ?? DEFAULTS.cassandra.concurrency,
          timeoutMs: t.timeoutMs ?? DEFAULTS.cassandra.timeoutMs,
          maxBatchBytes: t.maxBatchBytes ?? DEFAULTS.cassandra.maxBatchBytes,
          deleteJitterMs: t.deleteJitterMs ?? 0,
          replication: t.replication ?? null,
          tables: t.tables ?? {},
        }
      }
    }
  })
}

const KAFKA_ONLY_KEYS = ['cluster', 'topic', 'replicationFactor', 'retentionMs', 'partitioner', 'compression'] as const
const SQS_ONLY_KEYS = ['queue', 'fifo', 'shards', 'maxReceiveCount', 'visibilityTimeoutSeconds', 'maxNativeDelaySeconds'] as const

function sqsLogSettings(namespace: string, ns: NamespaceConfig, retry: RetryPolicy, configPath: string, file: ConfigFile): SqsLogSettings | null {
  const where = `${configPath}: key "namespaces.${namespace}`
  if ((ns.backend ?? DEFAULTS.backend) !== 'sqs') {
    const stray = SQS_ONLY_KEYS.find((k) => ns[k] !== undefined)
    if (stray) throw new ConfigError(`${where}.${stray}" applies to SQS namespaces only`, { suggestions: [`set namespaces.${namespace}.backend: sqs, or remove ${stray}`] })
    return null
  }
  const stray = (['topic', 'replicationFactor', 'retentionMs', 'partitions'] as const).find((k) => ns[k] !== undefined)
  if (stray) {
    throw new ConfigError(`${where}.${stray}" does not apply to SQS namespaces`, {
      suggestions: [stray === 'partitions' ? `use namespaces.${namespace}.shards (one queue per shard)` : `remove ${stray}`],
    })
  }
  if (ns.cluster === undefined) {
    throw new ConfigError(`${where}": an SQS namespace needs "cluster", the name of a cluster under clusters.sqs`, {
      suggestions: [`add namespaces.${namespace}.cluster: NAME, and clusters: { sqs: { NAME: { region: us-east-1 } } }`],
    })
  }
  const visibilityTimeoutSeconds = ns.visibilityTimeoutSeconds ?? 30
  return {
    cluster: sqsCluster(file, ns.cluster, `${where}.cluster"`),
    queue: ns.queue ?? namespace.replaceAll('.', '-').slice(0, 70),
    fifo: ns.fifo ?? false,
    shards: ns.shards ?? 1,
    // Headroom above the attempts: peeks (wal tail), receives of delayed FIFO messages and crashed
    // consumers count too, and wal dead-letters with the failure context itself at maxAttempts.
    maxReceiveCount: ns.maxReceiveCount ?? retry.maxAttempts + 10,
    visibilityTimeoutSeconds,
    maxNativeDelaySeconds: ns.maxNativeDelaySeconds ?? 900,
  }
}

function kafkaLogSettings(namespace: string, ns: NamespaceConfig, configPath: string, file: ConfigFile): KafkaLogSettings | null {
  const where = `${configPath}: key "namespaces.${namespace}`
  if ((ns.backend ?? DEFAULTS.backend) !== 'kafka') {
    if ((ns.backend ?? DEFAULTS.backend) === 'sqs') return null
    const stray = KAFKA_ONLY_KEYS.find((k) => ns[k] !== undefined)
    if (stray) {
      throw new ConfigError(`${where}.${stray}" applies to Kafka namespaces only`, { suggestions: [`set namespaces.${namespace}.backend: kafka, or remove ${stray}`] })
    }
    return null
  }
  if (ns.cluster === undefined) {
    throw new ConfigError(`${where}": a Kafka namespace needs "cluster", the name of a cluster under clusters.kafka`, {
      suggestions: [`add namespaces.${namespace}.cluster: NAME, and clusters: { kafka: { NAME: { brokers: [host:port] } } }`],
    })
  }
  return {
    cluster: kafkaCluster(file, ns.cluster, `${where}.cluster"`, dirname(configPath)),
    topic: ns.topic ?? namespace,
    replicationFactor: ns.replicationFactor ?? null,
    retentionMs: ns.retentionMs ?? null,
    partitioner: ns.partitioner ?? 'murmur2',
    compression: ns.compression ?? 'none',
  }
}

/** Builds the effective config from a validated file (or none). */
export function resolveConfig(file: ConfigFile | null, path: string | null, env: NodeJS.ProcessEnv, selection: ContextSelection = NO_CONTEXT): ResolvedConfig {
  const defaults = {
    partitions: file?.defaults?.partitions ?? DEFAULTS.partitions,
    maxPayloadBytes: file?.defaults?.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes,
    txnTimeoutMs: file?.defaults?.txnTimeoutMs ?? DEFAULTS.txnTimeoutMs,
    retry: { ...DEFAULTS.retry, ...file?.defaults?.retry },
  }
  const stateDir = file?.stateDir
    ? isAbsolute(expandHome(file.stateDir))
      ? expandHome(file.stateDir)
      : resolve(dirname(path!), file.stateDir)
    : defaultStateDir(env)
  const namespaces = new Map<string, NamespaceSettings>()
  for (const [name, ns] of Object.entries(file?.namespaces ?? {})) {
    const sqs = sqsLogSettings(name, ns, { ...defaults.retry, ...ns.retry }, path ?? '.', file!)
    namespaces.set(name, {
      name,
      backend: ns.backend ?? DEFAULTS.backend,
      kafka: kafkaLogSettings(name, ns, path ?? '.', file!),
      sqs,
      // An SQS namespace's "partitions" are its shard queues.
      partitions: sqs ? sqs.shards : (ns.partitions ?? defaults.partitions),
      maxPayloadBytes: ns.maxPayloadBytes ?? defaults.maxPayloadBytes,
      txnTimeoutMs: ns.txnTimeoutMs ?? defaults.txnTimeoutMs,
      description: ns.description ?? null,
      declared: true,
      targets: targetSettings(name, ns, { ...defaults.retry, ...ns.retry }, stateDir, path ?? '.', file!),
      ratePerSec: parseRate(ns.rate),
    })
  }
  return {
    path,
    stateDir,
    autoCreateNamespaces: file?.autoCreateNamespaces ?? (file === null || file.namespaces === undefined),
    defaults,
    namespaces,
    daemon: resolveDaemonSettings(file?.daemon, env, path),
    contexts: selection.names,
    context: selection.context,
    contextSource: selection.source,
    defaultNamespace: env.WAL_NAMESPACE || file?.defaultNamespace || 'default',
    warnings: [...namespaces.values()]
      .filter((ns) => ns.targets.length === 0)
      .map((ns) => `namespace "${ns.name}" has no targets (targets: []): nothing applies its mutations; \`wal consume -n ${ns.name}\` refuses to run`),
  }
}

/** The context in use and where it was chosen (see applyContext). */
export interface ContextSelection {
  names: string[]
  context: string | null
  source: ResolvedConfig['contextSource']
}

const CONTEXT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

const NO_CONTEXT: ContextSelection = { names: [], context: null, source: null }

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** `over` merged into `base`: objects key by key, anything else (arrays too) replaced. */
function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over
  const merged: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) merged[key] = key in base ? deepMerge(base[key], value) : value
  return merged
}

/** Where `wal config use-context` remembers its choice per config file: <state dir from the environment>/contexts.json, 0600. */
export function usedContextsFile(env: NodeJS.ProcessEnv): string {
  return join(defaultStateDir(env), 'contexts.json')
}

function readUsedContexts(env: NodeJS.ProcessEnv): Record<string, string> {
  try {
    const parsed = JSON.parse(readFileSync(usedContextsFile(env), 'utf8')) as unknown
    return isPlainObject(parsed) ? (Object.fromEntries(Object.entries(parsed).filter(([, v]) => typeof v === 'string')) as Record<string, string>) : {}
  } catch {
    return {}
  }
}

/** Remembers `context` as the one to use with the config file `configPath` (null: none). */
export function writeUsedContext(env: NodeJS.ProcessEnv, configPath: string, context: string | null): string {
  const file = usedContextsFile(env)
  const used = readUsedContexts(env)
  if (context === null) delete used[configPath]
  else used[configPath] = context
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  const temporary = `${file}.${process.pid}.tmp`
  writeFileSync(temporary, `${JSON.stringify(used, null, 2)}\n`, { mode: 0o600 })
  renameSync(temporary, file)
  return file
}

/**
 * Picks the context to use (--context, else WAL_CONTEXT, else the one `wal config use-context` chose
 * for this file) and merges its settings over the rest of the file. A file without contexts is used as
 * it is; naming a context it does not have is a usage error, with the closest name.
 */
export function applyContext(raw: unknown, file: string, env: NodeJS.ProcessEnv, requested?: string): { raw: unknown; selection: ContextSelection } {
  const flagOrEnv = requested ?? (env.WAL_CONTEXT || undefined)
  const source: ContextSelection['source'] = requested !== undefined ? 'flag' : flagOrEnv !== undefined ? 'env' : null
  if (!isPlainObject(raw) || raw.contexts === undefined) {
    if (flagOrEnv !== undefined) {
      throw new UsageError(`context "${flagOrEnv}" ${source === 'flag' ? '(--context)' : '(WAL_CONTEXT)'} is not declared: ${file} has no contexts`, {
        code: 'WAL_CONTEXT_UNKNOWN',
        suggestions: ['declare it under "contexts:" in the config file (see .walrc.example)', ...(source === 'env' ? ['or unset WAL_CONTEXT'] : [])],
      })
    }
    return { raw, selection: NO_CONTEXT }
  }
  const { contexts, ...rest } = raw
  if (!isPlainObject(contexts)) {
    throw new ConfigError(`${file}: key "contexts": expected an object of named contexts, found ${Array.isArray(contexts) ? 'an array' : typeof contexts}`, {
      suggestions: ['write contexts: { prod: { … }, staging: { … } }, each with settings as at the top level of the file'],
    })
  }
  const names = Object.keys(contexts)
  const badName = names.find((name) => !CONTEXT_NAME.test(name))
  if (badName !== undefined) {
    throw new ConfigError(`${file}: key "contexts": "${badName}" is not a valid context name`, {
      suggestions: ['a context name has 1-64 letters, digits, ".", "_" or "-", and starts with a letter or digit'],
    })
  }
  const remembered = flagOrEnv === undefined ? readUsedContexts(env)[file] : undefined
  const chosen = flagOrEnv ?? remembered
  if (chosen === undefined) return { raw: rest, selection: { names, context: null, source: null } }
  if (!Object.hasOwn(contexts, chosen)) {
    const close = closestName(chosen, names)
    const hints = [...(close ? [`did you mean "${close}"?`] : []), `the contexts of ${file}: ${names.join(', ') || '(none)'}`]
    if (remembered !== undefined) {
      throw new ConfigError(`${file}: the context in use, "${chosen}" (from wal config use-context), is no longer declared`, {
        code: 'WAL_CONTEXT_UNKNOWN',
        suggestions: [...hints, 'choose another with: wal config use-context NAME (or --context NAME)'],
      })
    }
    throw new UsageError(`context "${chosen}" ${source === 'flag' ? '(--context)' : '(WAL_CONTEXT)'} is not declared in ${file}`, { code: 'WAL_CONTEXT_UNKNOWN', suggestions: hints })
  }
  return { raw: deepMerge(rest, contexts[chosen]), selection: { names, context: chosen, source: source ?? 'use-context' } }
}

/** Validates raw config content (already parsed from YAML/JSON/JS). */
export function validateConfig(raw: unknown, file: string, env: NodeJS.ProcessEnv): ConfigFile {
  const interpolated = interpolateEnv(raw ?? {}, env, (keyPath) => `${file}: key "${keyPath}"`)
  // `targets: []` reads naturally for "no targets": the same as {}.
  if (isPlainObject(interpolated) && isPlainObject(interpolated.namespaces)) {
    for (const ns of Object.values(interpolated.namespaces)) if (isPlainObject(ns) && Array.isArray(ns.targets) && ns.targets.length === 0) ns.targets = {}
  }
  const result = v.safeParse(ConfigSchema, interpolated)
  if (result.success) return result.output
  // Every problem at once, so that one run of `wal config validate` shows all there is to fix.
  const errors = result.issues.map((issue) => describeIssue(file, issue, interpolated))
  if (errors.length === 1) throw errors[0]
  throw new ConfigError(`${file}: ${errors.length} problems:\n${errors.map((e) => `  - ${e.message.slice(file.length + 2)}`).join('\n')}`, {
    code: 'WAL_CONFIG_INVALID',
    details: { file, errors: errors.map((e) => ({ message: e.message, ...e.details })) },
    suggestions: [...new Set(errors.flatMap((e) => e.suggestions))],
  })
}

/**
 * For talking to a running daemon when the config file is invalid (`daemon reload` of a broken edit):
 * the state directory and `daemon:` settings (its token) the file gives, where those parts are valid
 * on their own; else wal's defaults. Never throws.
 */
export async function loadDaemonConfigLeniently(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const env = options.env ?? process.env
  const explicit = options.configPath ?? env.WAL_CONFIG
  let found
  try {
    found = await findConfig(explicit ? resolve(options.cwd ?? process.cwd(), explicit) : undefined, options.cwd)
  } catch {
    return resolveConfig(null, null, env)
  }
  const raw = (found && !found.isEmpty && typeof found.config === 'object' && found.config !== null ? found.config : {}) as Record<string, unknown>
  const daemon = (typeof raw.daemon === 'object' && raw.daemon !== null ? raw.daemon : {}) as Record<string, unknown>
  const candidates = [{ stateDir: raw.stateDir, daemon }, { stateDir: raw.stateDir, daemon: { token: daemon.token } }, { stateDir: raw.stateDir }, { daemon: { token: daemon.token } }]
  for (const candidate of candidates) {
    try {
      const subset = Object.fromEntries(Object.entries(candidate).filter(([, value]) => value !== undefined))
      return resolveConfig(validateConfig(subset, found!.filepath, env), found!.filepath, env)
    } catch {
      // a part that is itself invalid: try less
    }
  }
  return resolveConfig(null, null, env)
}

/** Loads the configuration: explicit path, else search from cwd, else zero-config. */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const env = options.env ?? process.env
  const explicit = options.configPath ?? env.WAL_CONFIG
  let found
  try {
    found = await findConfig(explicit ? resolve(options.cwd ?? process.cwd(), explicit) : undefined, options.cwd)
  } catch (error) {
    if (error instanceof ConfigError || error instanceof InterruptedError) throw error
    const err = error as NodeJS.ErrnoException
    const file = explicit ?? (err as { filepath?: string }).filepath ?? 'config'
    const reason =
      err.code === 'ENOENT'
        ? 'no such file'
        : err.code === 'EACCES'
          ? 'permission denied'
          : err.code === 'EISDIR'
            ? 'it is a directory'
            : err.message.split('\n')[0]
    throw new ConfigError(`cannot read config ${file}: ${reason}`, {
      cause: error,
      details: { file },
      suggestions: explicit
        ? ['check the path given with --config or WAL_CONFIG']
        : ['fix the file, or run `wal config validate` to see what is wrong'],
    })
  }
  let config: ResolvedConfig
  if (found) {
    const { raw, selection } = applyContext(found.isEmpty ? {} : found.config, found.filepath, env, options.context)
    const label = selection.context === null ? found.filepath : `${found.filepath} (context "${selection.context}")`
    config = resolveConfig(validateConfig(raw, label, env), found.filepath, env, selection)
  } else {
    config = resolveConfig(null, null, env, applyContext(undefined, 'the configuration (no config file was found)', env, options.context).selection)
  }
  const warning = checkStateDir(config.stateDir)
  if (warning !== null) options.stderr?.write(`wal: ${escapeControl(warning)}\n`)
  return config
}

/** The settings of a namespace, or an error that lists the declared ones. */
// The settings of namespaces created on demand, per config: produce asks once per line. Bounded, since
// the daemon's HTTP API takes names from its clients.
const onDemandSettings = new WeakMap<ResolvedConfig, Map<string, NamespaceSettings>>()
const MAX_ON_DEMAND_SETTINGS = 1024

export function namespaceSettings(config: ResolvedConfig, given: string | undefined): NamespaceSettings {
  const name = given ?? config.defaultNamespace
  const known = onDemandSettings.get(config)?.get(name)
  if (known) return known
  if (!NAMESPACE_PATTERN.test(name)) {
    throw new UsageError(`"${name}" is not a valid namespace name`, {
      code: 'WAL_NAMESPACE_INVALID',
      suggestions: ['a namespace name has 1-128 letters, digits, ".", "_" or "-", and starts with a letter or digit'],
    })
  }
  const declared = config.namespaces.get(name)
  if (declared) return declared
  if (config.autoCreateNamespaces) {
    let cache = onDemandSettings.get(config)
    if (!cache) onDemandSettings.set(config, (cache = new Map()))
    if (cache.size >= MAX_ON_DEMAND_SETTINGS) cache.clear()
    const settings: NamespaceSettings = {
      name,
      backend: DEFAULTS.backend,
      kafka: null,
      sqs: null,
      partitions: config.defaults.partitions,
      maxPayloadBytes: config.defaults.maxPayloadBytes,
      txnTimeoutMs: config.defaults.txnTimeoutMs,
      description: null,
      declared: false,
      // With nothing configured, mutations are applied to the embedded key-value store.
      targets: [defaultKvTarget(config.stateDir, name, config.defaults.retry)],
      ratePerSec: null,
    }
    cache.set(name, settings)
    return settings
  }
  throw new UnknownNamespaceError(name, [...config.namespaces.keys()], config.path ?? 'the configuration')
}

/** An HTTP target pointed at a wal daemon's write API sends envelopes (what that API takes); others, payloads. */
function httpBodyDefault(url: string): 'payload' | 'envelope' {
  return /\/v1\/namespaces\/[^/]+\/mutations\/?$/.test(new URL(url).pathname) ? 'envelope' : 'payload'
}
