/**
 * The `daemon:` section of the config: where the daemon's HTTP API listens, its limits, and how its
 * consumers run. Kept apart from schema.ts so that the daemon's settings and defaults live in one place.
 */
import { homedir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import * as v from 'valibot'

import { lazy } from '../validation.js'

/** Defaults of the daemon's settings. */
export const DAEMON_DEFAULTS = {
  host: '127.0.0.1',
  port: 7460,
  maxInFlight: 64,
  maxBodyBytes: 4 * 1024 * 1024,
  requestTimeoutMs: 30_000,
  drainTimeoutMs: 30_000,
  leaseTtlMs: 10_000,
  shard: 'auto',
  headersTimeoutMs: 10_000,
  maxConnections: 1024,
  maxAutoNamespaces: 16,
} as const

const Whole = (what: string, min: number, max: number) =>
  v.pipe(v.number(what), v.integer(`a whole number`), v.minValue(min, `${what} from ${min} to ${max}`), v.maxValue(max, `${what} from ${min} to ${max}`))

export const DaemonConfigSchema = lazy(() => v.strictObject({
  host: v.optional(v.pipe(v.string('a host name or address to listen on'), v.minLength(1))),
  port: v.optional(Whole('a TCP port', 0, 65535)),
  token: v.optional(v.pipe(v.string('a bearer token'), v.minLength(16, 'a bearer token of at least 16 characters'))),
  auth: v.optional(v.picklist(['token', 'none'], '"token" or "none"')),
  allowedOrigins: v.optional(v.array(v.pipe(v.string('an origin (scheme://host:port)'), v.regex(/^https?:\/\/[^/\s]+$/, 'an origin (scheme://host[:port], no path)')))),
  allowedHosts: v.optional(v.array(v.pipe(v.string('a host name'), v.minLength(1)))),
  allowPlainHttp: v.optional(v.boolean('true or false')),
  headersTimeoutMs: v.optional(Whole('a timeout in ms', 100, 3_600_000)),
  maxConnections: v.optional(Whole('a number of connections', 1, 1_000_000)),
  maxAutoNamespaces: v.optional(Whole('a number of namespaces', 0, 100_000)),
  maxInFlight: v.optional(Whole('a number of requests', 1, 100_000)),
  maxBodyBytes: v.optional(Whole('a size in bytes', 1024, 64 * 1024 * 1024)),
  requestTimeoutMs: v.optional(Whole('a timeout in ms', 100, 3_600_000)),
  drainTimeoutMs: v.optional(Whole('a timeout in ms', 0, 3_600_000)),
  leaseTtlMs: v.optional(Whole('a lease in ms', 1000, 600_000)),
  concurrency: v.optional(Whole('a number of applies at once', 1, 10_000)),
  shard: v.optional(v.pipe(v.string('"auto" or a shard "I/N"'), v.regex(/^(auto|\d+\/\d+)$/, '"auto" or a shard "I/N"'))),
  tls: v.optional(
    v.strictObject({
      cert: v.pipe(v.string('a certificate file (PEM)'), v.minLength(1)),
      key: v.pipe(v.string('a private key file (PEM)'), v.minLength(1)),
      ca: v.optional(v.pipe(v.string('a CA certificate file (PEM)'), v.minLength(1))),
    }),
  ),
}))

export type DaemonConfig = v.InferOutput<typeof DaemonConfigSchema>

/** The daemon's effective settings. */
export interface DaemonSettings {
  host: string
  /** 0: any free port (the one taken is written to the daemon's state file). */
  port: number
  /**
   * The bearer token clients must send (`Authorization: Bearer <token>`) to /v1/*: daemon.token, else
   * WAL_DAEMON_TOKEN; null: the one the daemon generates in its state directory (daemon/token).
   */
  token: string | null
  /** "token" (the default): every /v1/* request needs the token; "none": none asked (loopback only). */
  auth: 'token' | 'none'
  /** Origins (as browsers send them) allowed to call the API; any other Origin header is refused. */
  allowedOrigins: string[]
  /** Host names, besides loopback names and IP addresses, that requests may name in their Host header. */
  allowedHosts: string[]
  /** Listen beyond loopback without TLS (a warning is logged). */
  allowPlainHttp: boolean
  /** A client must have sent its request headers within this time. */
  headersTimeoutMs: number
  /** Open connections at once; more wait in the kernel's backlog. */
  maxConnections: number
  /** Namespaces that HTTP writes may create when the config does not declare them (zero-config mode). */
  maxAutoNamespaces: number
  /** Write requests handled at once; more are answered 429 with Retry-After. */
  maxInFlight: number
  /** Larger request bodies are answered 413. */
  maxBodyBytes: number
  requestTimeoutMs: number
  /** On stop, how long consumers may take to finish what they started. */
  drainTimeoutMs: number
  leaseTtlMs: number
  /** Applies at once per consumer; null: each target's own (a Cassandra target's concurrency, else 16). */
  concurrency: number | null
  /** "auto" (share partitions with other consumers) or "I/N". */
  shard: string
  /**
   * HTTPS: the daemon's certificate and key; with `ca`, clients must present a certificate signed by it
   * (mTLS). The `wal daemon` commands present the daemon's own certificate. Paths are absolute.
   */
  tls: { cert: string; key: string; ca: string | null } | null
}

/** `configPath`: the file the settings came from (TLS file paths are relative to it). */
export function resolveDaemonSettings(config: DaemonConfig | undefined, env: NodeJS.ProcessEnv, configPath: string | null = null): DaemonSettings {
  const file = (p: string): string => {
    const home = p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p
    return isAbsolute(home) ? home : resolve(configPath === null ? '.' : dirname(configPath), home)
  }
  const tls = config?.tls
  return {
    host: config?.host ?? DAEMON_DEFAULTS.host,
    port: config?.port ?? DAEMON_DEFAULTS.port,
    token: config?.token ?? (env.WAL_DAEMON_TOKEN || null),
    auth: config?.auth ?? 'token',
    allowedOrigins: config?.allowedOrigins ?? [],
    allowedHosts: config?.allowedHosts ?? [],
    allowPlainHttp: config?.allowPlainHttp ?? false,
    headersTimeoutMs: config?.headersTimeoutMs ?? DAEMON_DEFAULTS.headersTimeoutMs,
    maxConnections: config?.maxConnections ?? DAEMON_DEFAULTS.maxConnections,
    maxAutoNamespaces: config?.maxAutoNamespaces ?? DAEMON_DEFAULTS.maxAutoNamespaces,
    maxInFlight: config?.maxInFlight ?? DAEMON_DEFAULTS.maxInFlight,
    maxBodyBytes: config?.maxBodyBytes ?? DAEMON_DEFAULTS.maxBodyBytes,
    requestTimeoutMs: config?.requestTimeoutMs ?? DAEMON_DEFAULTS.requestTimeoutMs,
    drainTimeoutMs: config?.drainTimeoutMs ?? DAEMON_DEFAULTS.drainTimeoutMs,
    leaseTtlMs: config?.leaseTtlMs ?? DAEMON_DEFAULTS.leaseTtlMs,
    concurrency: config?.concurrency ?? null,
    shard: config?.shard ?? DAEMON_DEFAULTS.shard,
    tls: tls === undefined ? null : { cert: file(tls.cert), key: file(tls.key), ca: tls.ca === undefined ? null : file(tls.ca) },
  }
}
