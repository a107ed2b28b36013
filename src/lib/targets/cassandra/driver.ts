/**
 * Reaching a Cassandra cluster: cassandra-driver, imported only when a Cassandra target is used, client
 * options from a named cluster (auth, TLS from PEM files), and the driver's errors in wal's terms —
 * converted here, where the driver is called, keeping the original as `cause`.
 */
import { readFileSync } from 'node:fs'

import type { CassandraClusterSettings } from '../../config/schema.js'
import { BackendUnavailableError, ClusterAccessError, ConfigError, type WalError } from '../../errors.js'
import { TargetError } from '../target.js'

export type CassandraDriver = typeof import('cassandra-driver')

/** cassandra-driver, imported on first use: never on the start-up path of other commands. */
export async function loadDriver(): Promise<CassandraDriver> {
  const driver = (await import('cassandra-driver')) as CassandraDriver & { default?: CassandraDriver }
  return driver.default ?? driver
}

export interface ClientSettings {
  cluster: CassandraClusterSettings
  consistency: string
  /** How long one request may take before it is given up as a (retryable) timeout. */
  timeoutMs: number
}

/** Driver options for a cluster. Throws a ConfigError (exit 3) when a TLS file cannot be read. */
export function clientOptions(settings: ClientSettings, driver: CassandraDriver): import('cassandra-driver').ClientOptions {
  const { cluster } = settings
  const read = (path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined
    try {
      return readFileSync(path)
    } catch (error) {
      throw new ClusterAccessError(`Cassandra cluster "${cluster.name}": cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
        code: 'WAL_TARGET_TLS',
        cause: error,
        suggestions: [`fix the path under clusters.cassandra.${cluster.name}.tls`],
      })
    }
  }
  const tls =
    typeof cluster.tls === 'object'
      ? { ca: read(cluster.tls.ca), cert: read(cluster.tls.cert), key: read(cluster.tls.key), rejectUnauthorized: cluster.tls.rejectUnauthorized ?? true }
      : cluster.tls
        ? { rejectUnauthorized: true }
        : undefined
  const consistency = (driver.types.consistencies as unknown as Record<string, number>)[settings.consistency]
  return {
    contactPoints: cluster.contactPoints,
    localDataCenter: cluster.localDataCenter,
    ...(cluster.auth ? { authProvider: new driver.auth.PlainTextAuthProvider(cluster.auth.username, cluster.auth.password) } : {}),
    ...(tls ? { sslOptions: tls } : {}),
    // The driver's default for its own queries (schema, topology); applies pass timeoutMs per request.
    socketOptions: { connectTimeout: cluster.connectTimeoutMs, readTimeout: Math.max(settings.timeoutMs, 12_000) },
    // A node that went away is tried again soon (0.25 s, backing off to 5 s), not after the default 10 minutes.
    policies: { reconnection: new driver.policies.reconnection.ExponentialReconnectionPolicy(250, 5000, false) },
    queryOptions: { consistency, prepare: true, isIdempotent: true },
  }
}

type DriverError = Error & { code?: number | string; innerErrors?: Record<string, unknown>; info?: string }

/** Cassandra's error codes (native protocol spec, section 9). */
const CODE = {
  serverError: 0x0000,
  badCredentials: 0x0100,
  unavailable: 0x1000,
  overloaded: 0x1001,
  isBootstrapping: 0x1002,
  writeTimeout: 0x1100,
  readTimeout: 0x1200,
  readFailure: 0x1300,
  writeFailure: 0x1500,
  syntaxError: 0x2000,
  unauthorized: 0x2100,
  invalid: 0x2200,
  configError: 0x2300,
} as const

const RESPONSE_CODES: Record<number, { code: string; errorClass: 'retryable' | 'fatal' | 'infrastructure' }> = {
  [CODE.serverError]: { code: 'CASSANDRA_SERVER_ERROR', errorClass: 'retryable' },
  [CODE.badCredentials]: { code: 'CASSANDRA_AUTH', errorClass: 'infrastructure' },
  [CODE.unavailable]: { code: 'CASSANDRA_UNAVAILABLE', errorClass: 'retryable' },
  [CODE.overloaded]: { code: 'CASSANDRA_OVERLOADED', errorClass: 'retryable' },
  [CODE.isBootstrapping]: { code: 'CASSANDRA_BOOTSTRAPPING', errorClass: 'retryable' },
  [CODE.writeTimeout]: { code: 'CASSANDRA_WRITE_TIMEOUT', errorClass: 'retryable' },
  [CODE.readTimeout]: { code: 'CASSANDRA_READ_TIMEOUT', errorClass: 'retryable' },
  [CODE.readFailure]: { code: 'CASSANDRA_READ_FAILURE', errorClass: 'retryable' },
  [CODE.writeFailure]: { code: 'CASSANDRA_WRITE_FAILURE', errorClass: 'retryable' },
  [CODE.syntaxError]: { code: 'CASSANDRA_SYNTAX', errorClass: 'fatal' },
  [CODE.unauthorized]: { code: 'CASSANDRA_UNAUTHORIZED', errorClass: 'fatal' },
  [CODE.invalid]: { code: 'CASSANDRA_INVALID', errorClass: 'fatal' },
  [CODE.configError]: { code: 'CASSANDRA_CONFIG', errorClass: 'fatal' },
}

function firstInner(error: DriverError): DriverError | undefined {
  const inner = Object.values(error.innerErrors ?? {})
  return inner[0] as DriverError | undefined
}

/** Whether a batch was refused for its size (batch_size_fail_threshold): it can still go part by part. */
export function isBatchTooLarge(error: unknown): boolean {
  const e = error as DriverError
  return e?.name === 'ResponseError' && e.code === CODE.invalid && /batch too large/i.test(e.message)
}

/**
 * How a driver failure affects the target: no host reachable pauses it (infrastructure); timeouts,
 * unavailable and overloaded replicas are retried; a statement Cassandra refuses (syntax, invalid,
 * unauthorized) or a value the driver cannot encode goes to the DLQ (fatal).
 */
export function classifyCassandraError(error: unknown): TargetError {
  if (error instanceof TargetError) return error
  const e = error as DriverError
  const name = e?.name ?? ''
  const message = e?.message ?? String(error)
  if (name === 'NoHostAvailableError') {
    const inner = firstInner(e)
    const all = Object.values(e.innerErrors ?? {}) as DriverError[]
    // Every host tried answered too slowly (the driver moves on to the next host on a timeout): the
    // cluster is there but slow, and the write may even have landed; retry, spending an attempt.
    if (all.length > 0 && all.every((i) => i?.name === 'OperationTimedOutError')) {
      return new TargetError(`Cassandra: ${inner!.message}`, { errorClass: 'retryable', code: 'CASSANDRA_CLIENT_TIMEOUT', cause: error })
    }
    return new TargetError(`Cassandra: no host reachable${inner ? `: ${inner.message.split('\n')[0]}` : ''}`, { errorClass: 'infrastructure', code: 'CASSANDRA_NO_HOST', cause: error })
  }
  if (name === 'OperationTimedOutError') return new TargetError(`Cassandra: ${message}`, { errorClass: 'retryable', code: 'CASSANDRA_CLIENT_TIMEOUT', cause: error })
  if (name === 'BusyConnectionError') return new TargetError(`Cassandra: ${message}`, { errorClass: 'retryable', code: 'CASSANDRA_BUSY', cause: error })
  if (name === 'AuthenticationError') return new TargetError(`Cassandra: ${message}`, { errorClass: 'infrastructure', code: 'CASSANDRA_AUTH', cause: error })
  if (name === 'ResponseError' && typeof e.code === 'number') {
    const known = RESPONSE_CODES[e.code]
    if (isBatchTooLarge(error)) return new TargetError(`Cassandra: ${message}`, { errorClass: 'fatal', code: 'CASSANDRA_BATCH_TOO_LARGE', cause: error })
    return new TargetError(`Cassandra: ${message}`, { errorClass: known?.errorClass ?? 'retryable', code: known?.code ?? `CASSANDRA_0x${e.code.toString(16)}`, cause: error })
  }
  // The driver checks values against the prepared statement's types: a value that does not fit.
  if (error instanceof TypeError) return new TargetError(`Cassandra: a value does not fit its column: ${message}`, { errorClass: 'fatal', code: 'CASSANDRA_VALUE_INVALID', cause: error })
  return new TargetError(`Cassandra: ${message}`, { errorClass: 'retryable', code: 'CASSANDRA_UNEXPECTED', cause: error })
}

const TLS_CODES = /^(ERR_SSL|ERR_TLS|EPROTO$|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_OSSL)/

/** Why a connection at start failed, as the error a user sees: configuration (exit 3) or unreachable (exit 5). */
export function connectError(error: unknown, cluster: CassandraClusterSettings, where: string): WalError {
  const e = error as DriverError
  const inner = (Object.values(e?.innerErrors ?? {}) as DriverError[]).concat(e?.innerErrors ? [] : [e])
  const prefix = `${where}: Cassandra cluster "${cluster.name}" (${cluster.contactPoints.join(', ')})`
  const key = `clusters.cassandra.${cluster.name}`
  const datacenter = inner.find((i) => /localDataCenter/.test(i?.message ?? ''))
  if (datacenter) {
    return new ConfigError(`${prefix}: ${datacenter.message}`, { code: 'WAL_TARGET_DATACENTER', cause: error, suggestions: [`set ${key}.localDataCenter to one of the data centers named`] })
  }
  const auth = inner.find((i) => i?.name === 'AuthenticationError' || (i?.name === 'ResponseError' && i.code === CODE.badCredentials))
  if (auth) {
    return new ClusterAccessError(`${prefix} refused the credentials: ${auth.message}`, {
      code: 'WAL_TARGET_AUTH',
      cause: error,
      suggestions: [`check ${key}.auth.username and password (the cluster needs ${cluster.auth ? 'other' : 'some'} credentials)`],
    })
  }
  const tls = inner.find((i) => (typeof i?.code === 'string' && TLS_CODES.test(i.code)) || /TLS|SSL|certificate/i.test(i?.message ?? ''))
  if (tls) {
    return new ClusterAccessError(`${prefix}: TLS handshake failed: ${tls.message.split('\n')[0]}`, {
      code: 'WAL_TARGET_TLS',
      cause: error,
      suggestions: [cluster.tls ? `check ${key}.tls (CA, client certificate and key), and that the cluster's native port speaks TLS` : `the cluster may require TLS: set ${key}.tls`],
    })
  }
  const reason = inner[0]?.message?.split('\n')[0] ?? e?.message ?? String(error)
  return new BackendUnavailableError(`${prefix} cannot be reached: ${reason}`, {
    code: 'WAL_TARGET_UNAVAILABLE',
    cause: error,
    suggestions: [`check ${key}.contactPoints and that Cassandra is running`, 'nothing is lost: the mutations wait in the log until the target is reachable'],
  })
}
