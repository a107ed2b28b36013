/**
 * `wal daemon run`: every consumer the config declares, in this process, plus the HTTP API; drains on
 * the stop signal; re-reads the config on reload (SIGHUP or POST /v1/reload), keeping the running one
 * when the new one is invalid. Loaded only by the daemon commands: pino and prom-client come with it.
 */
import { writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

import { clockFromEnv } from '../clock.js'
import { loadConfig } from '../config/load.js'
import type { ResolvedConfig } from '../config/schema.js'
import { BackendUnavailableError, toWalError } from '../errors.js'
import { listEmbeddedLogs } from '../log/embedded/embedded-log.js'
import { ConsumerSet, LogPool, type ConsumerStatus } from './consumers.js'
import { acquirePidFile, daemonPaths, ensureTokenFile, releasePidFile, type DaemonStateFile } from './files.js'
import { checkListen, isLoopbackHost } from './gate.js'
import { applyTimeouts, createApiServer } from './http-api.js'
import { createLogger } from './logger.js'
import { DaemonMetrics } from './metrics.js'
import { planConsumers, restartOnlyChanges } from './plan.js'
import type { DaemonRunOptions, DaemonRunSummary } from './types.js'

/** How often namespaces created on demand (zero-config) are looked for, to consume them too. */
const RESCAN_INTERVAL_MS = 2000

/** What `wal daemon reload` answers. */
export interface ReloadResult {
  ok: boolean
  message: string
  added: string[]
  removed: string[]
  changed: string[]
  unchanged: string[]
  /** Settings that changed but take effect only after a restart. */
  needsRestart: string[]
  error?: Record<string, unknown>
}

/** What GET /v1/status answers. */
export interface DaemonStatus {
  pid: number
  startedAt: string
  uptimeMs: number
  url: string
  configPath: string | null
  stateDir: string
  ready: boolean
  draining: boolean
  http: { inFlight: number; maxInFlight: number; reading: number }
  /** "token" or "none". */
  auth: string
  lastReload: { at: string; ok: boolean; message: string } | null
  consumers: ConsumerStatus[]
}

export async function runDaemon(options: DaemonRunOptions): Promise<DaemonRunSummary> {
  const { io } = options
  const loadOptions = { configPath: options.configPath, context: options.context, cwd: io.cwd, env: io.env, stderr: io.stderr }
  const now = clockFromEnv(io.env)
  // Command-line choices win over the file's, also across reloads.
  const withFlags = (c: ResolvedConfig): ResolvedConfig => ({
    ...c,
    daemon: { ...c.daemon, auth: options.noAuth ? 'none' : c.daemon.auth, allowPlainHttp: options.allowPlainHttp || c.daemon.allowPlainHttp },
  })
  let config: ResolvedConfig = withFlags(await loadConfig(loadOptions))
  const listen = { host: options.host ?? config.daemon.host, port: options.port ?? config.daemon.port }
  const warnings = checkListen(listen.host, config.daemon)
  // A config the consumers cannot run (a forwarding loop) stops the start here, before anything is made.
  planConsumers(config)
  const logger = createLogger()
  const paths = daemonPaths(config.stateDir)
  // Generated once, kept across restarts: clients (wal daemon *, wal top, curl) read it from the file.
  const generatedToken = config.daemon.auth === 'token' && config.daemon.token === null ? ensureTokenFile(paths) : null
  const token = (): string | null => (config.daemon.auth === 'none' ? null : (config.daemon.token ?? generatedToken ?? ensureTokenFile(paths)))
  // Undeclared namespaces that HTTP writes are creating now (zero-config mode).
  const creating = new Set<string>()
  const startedAt = new Date()
  let url = ''
  let ready = false
  let draining = false
  let lastReload: DaemonStatus['lastReload'] = null
  let knownLogs: string[] = []
  const logs = new LogPool(() => config)
  // eslint-disable-next-line prefer-const -- referenced by the metrics' lag callback before it is made
  let consumers: ConsumerSet
  const metrics = new DaemonMetrics({ lag: () => consumers.lag() })
  consumers = new ConsumerSet({ logs, logger, metrics, now })

  // Reloads (and zero-config rescans) run one at a time, in order.
  let serial: Promise<unknown> = Promise.resolve()
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const run = serial.then(work, work)
    serial = run.catch(() => undefined)
    return run
  }
  const existingLogs = (c: ResolvedConfig): string[] => (c.autoCreateNamespaces ? listEmbeddedLogs(c.stateDir) : [])
  const applyPlan = (c: ResolvedConfig) => {
    knownLogs = existingLogs(c)
    return consumers.apply(planConsumers(c, knownLogs), c.daemon.drainTimeoutMs)
  }

  const reload = (reason: string): Promise<ReloadResult> =>
    exclusive(async () => {
      if (draining) return { ok: false, message: 'the daemon is stopping', added: [], removed: [], changed: [], unchanged: [], needsRestart: [] }
      let next: ResolvedConfig
      try {
        next = withFlags(await loadConfig(loadOptions))
        checkListen(listen.host, next.daemon)
        planConsumers(next, existingLogs(next))
      } catch (error) {
        const walError = toWalError(error)
        const message = `config rejected, still running the previous one: ${walError.message}`
        lastReload = { at: new Date().toISOString(), ok: false, message }
        logger.error({ event: 'reload-rejected', reason, code: walError.code, err: walError.message, suggestions: walError.suggestions }, message)
        return { ok: false, message, added: [], removed: [], changed: [], unchanged: [], needsRestart: [], error: walError.toJSON() }
      }
      const needsRestart = restartOnlyChanges(config, next)
      // Settings that need a restart keep their running values until then.
      next = { ...next, stateDir: config.stateDir, daemon: { ...next.daemon, host: config.daemon.host, port: config.daemon.port, tls: config.daemon.tls } }
      config = next
      applyTimeouts(api.server, config.daemon)
      const diff = await applyPlan(config)
      const result: ReloadResult = {
        ok: true,
        message: `config reloaded: ${diff.added.length} consumer(s) added, ${diff.removed.length} removed, ${diff.changed.length} restarted, ${diff.unchanged.length} unchanged${needsRestart.length > 0 ? `; ${needsRestart.join(', ')} take effect after a restart` : ''}`,
        added: diff.added.map((s) => s.key),
        removed: diff.removed,
        changed: diff.changed.map((s) => s.key),
        unchanged: diff.unchanged,
        needsRestart,
      }
      lastReload = { at: new Date().toISOString(), ok: true, message: result.message }
      logger.info({ event: 'reloaded', reason, added: result.added, removed: result.removed, changed: result.changed, unchanged: result.unchanged.length, needsRestart }, result.message)
      return result
    })

  const rescan = (): void => {
    if (draining || !config.autoCreateNamespaces) return
    const found = listEmbeddedLogs(config.stateDir)
    if (found.every((name) => knownLogs.includes(name))) return
    void exclusive(async () => {
      if (!draining) await applyPlan(config)
    }).catch((error: unknown) =>
      logger.error({ event: 'rescan-failed', err: toWalError(error).message }, `looking for new namespaces failed: ${toWalError(error).message}`),
    )
  }

  const api = createApiServer({
    config: () => config,
    logs,
    metrics,
    logger,
    notReady: () => (draining ? 'draining' : !ready ? 'starting' : null),
    draining: () => draining,
    produced: (namespace) => {
      if (!knownLogs.includes(namespace)) rescan()
    },
    reload: () => reload('api'),
    token,
    exposed: !isLoopbackHost(listen.host),
    claimNamespace: (namespace) => {
      if (knownLogs.includes(namespace) || creating.has(namespace)) return null
      const existing = listEmbeddedLogs(config.stateDir)
      if (existing.includes(namespace)) return null
      const created = existing.filter((name) => !config.namespaces.has(name)).length + creating.size
      if (created >= config.daemon.maxAutoNamespaces) {
        return `namespace "${namespace}" is not in the config, and HTTP writes have already created ${created} undeclared namespaces (the limit, daemon.maxAutoNamespaces); nothing was written`
      }
      creating.add(namespace)
      return null
    },
    releaseNamespace: (namespace) => creating.delete(namespace),
    status: async (): Promise<DaemonStatus> => ({
      pid: process.pid,
      startedAt: startedAt.toISOString(),
      uptimeMs: Date.now() - startedAt.getTime(),
      url,
      configPath: config.path,
      stateDir: config.stateDir,
      ready: ready && !draining,
      draining,
      http: { inFlight: api.inFlight(), maxInFlight: config.daemon.maxInFlight, reading: api.reading() },
      auth: config.daemon.auth,
      lastReload,
      consumers: await consumers.status(),
    }),
  })

  // After the server is made (its TLS files read), so a config problem leaves no pid file behind.
  acquirePidFile(paths)
  const unsubscribe = options.onReloadSignal(() => void reload('SIGHUP'))
  let rescanTimer: NodeJS.Timeout | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      api.server.once('error', reject)
      api.server.listen(listen.port, listen.host, () => resolve())
    }).catch((error: NodeJS.ErrnoException) => {
      throw new BackendUnavailableError(`cannot listen on ${listen.host}:${listen.port}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`, {
        code: 'WAL_DAEMON_LISTEN',
        cause: error,
        suggestions: ['choose another port with --port or daemon.port in the config'],
      })
    })
    const address = api.server.address() as AddressInfo
    url = `${config.daemon.tls === null ? 'http' : 'https'}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
    const state: DaemonStateFile = { pid: process.pid, url, startedAt: startedAt.toISOString(), configPath: config.path }
    writeFileSync(paths.stateFile, `${JSON.stringify(state)}\n`, { mode: 0o600 })
    const auth = config.daemon.auth === 'none' ? 'none' : config.daemon.token === null ? `bearer (token in ${paths.tokenFile})` : 'bearer (daemon.token)'
    logger.info({ event: 'listening', url, auth: config.daemon.auth === 'none' ? 'none' : 'bearer' }, `HTTP API on ${url}, auth: ${auth}`)
    for (const warning of warnings) logger.warn({ event: config.daemon.auth === 'none' ? 'auth-disabled' : 'exposed', host: listen.host }, warning)

    if (!options.signal.aborted) await exclusive(() => applyPlan(config))
    ready = true
    logger.info({ event: 'started', consumers: consumers.size, config: config.path, stateDir: config.stateDir }, `daemon started with ${consumers.size} consumer(s)`)
    rescanTimer = setInterval(rescan, RESCAN_INTERVAL_MS)

    await new Promise<void>((resolve) => {
      if (options.signal.aborted) resolve()
      options.signal.addEventListener('abort', () => resolve(), { once: true })
    })
    const stoppingMs = Date.now()
    draining = true
    clearInterval(rescanTimer)
    logger.info({ event: 'draining', drainTimeoutMs: config.daemon.drainTimeoutMs }, 'stopping: no new writes, draining consumers')
    // Stop taking connections; answer what is in progress; then drain the consumers.
    const closed = new Promise<void>((resolve) => api.server.close(() => resolve()))
    api.server.closeIdleConnections()
    // A client still sending its body gets until the drain deadline, then is cut off (nothing of it is written).
    // The deadline's timer must not outlive the race, or it holds the process up for the whole deadline.
    const deadline = new AbortController()
    await Promise.race([api.settled(), sleep(config.daemon.drainTimeoutMs, undefined, { signal: deadline.signal }).catch(() => undefined)])
    deadline.abort()
    api.server.closeAllConnections()
    await api.settled()
    await closed
    await serial
    await consumers.stopAll(config.daemon.drainTimeoutMs)
    const drainedMs = Date.now() - stoppingMs
    logger.info({ event: 'stopped', tookMs: drainedMs }, `daemon stopped after draining for ${drainedMs} ms`)
    return { pid: process.pid, uptimeMs: Date.now() - startedAt.getTime(), drainedMs }
  } finally {
    clearInterval(rescanTimer)
    unsubscribe()
    api.server.closeAllConnections()
    await logs.close()
    releasePidFile(paths)
  }
}
