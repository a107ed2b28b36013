/**
 * `wal daemon start|stop|status|reload|logs`: the client side, talking to a running daemon through its
 * pid file, its state file and its HTTP API. None of this loads pino or prom-client.
 */
import { spawn } from 'node:child_process'
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import { setTimeout as sleep } from 'node:timers/promises'

import { escapeControl } from '../cli/render.js'
import { isBinary } from '../cli/version.js'
import { loadConfig, loadDaemonConfigLeniently } from '../config/load.js'
import type { ResolvedConfig } from '../config/schema.js'
import { BackendUnavailableError, ConfigError, NotFoundError, UsageError, type WalError } from '../errors.js'
import { parseDurationMs } from '../time.js'
import type { CommonOptions } from '../io/context.js'
import { daemonRequest, type DaemonResponse } from './client.js'
import { DaemonRunningError, daemonPaths, isAlive, readStateFile, readTokenFile, releasePidFile, runningPid, type DaemonPaths } from './files.js'

/** The daemon's status as GET /v1/status answers it (see daemon.ts). */
export type { DaemonStatus, ReloadResult } from './daemon.js'
import type { DaemonStatus, ReloadResult } from './daemon.js'

const START_TIMEOUT_MS = 30_000
const POLL_MS = 50

class DaemonNotRunningError extends NotFoundError {
  static override readonly defaultCode: string = 'WAL_DAEMON_NOT_RUNNING'
}

/**
 * The config and the daemon's files. When the config file is invalid (being edited for a reload), the
 * daemon is looked for with the state directory and token of what is valid in it, so that `reload` can
 * still ask it and get the daemon's own verdict, and `stop`/`status` still work.
 */
interface DaemonContext {
  config: ResolvedConfig
  paths: DaemonPaths
  /** Why the config file could not be loaded, when the daemon is reached with what could be read of it. */
  configError?: ConfigError
}

async function context(options: CommonOptions): Promise<DaemonContext> {
  try {
    const config = await loadConfig({ configPath: options.configPath, context: options.context, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
    return { config, paths: daemonPaths(config.stateDir) }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    // A broken edit must not stop `daemon reload|status|stop`: reach the daemon with the state directory
    // and token the file gives where those parts are valid (the daemon then reports the config error).
    const fallback = await loadDaemonConfigLeniently({ configPath: options.configPath, cwd: options.io.cwd, env: options.io.env })
    const paths = daemonPaths(fallback.stateDir)
    if (runningPid(paths) === null) throw error
    return { config: fallback, paths, configError: error }
  }
}

function notRunning(paths: DaemonPaths): DaemonNotRunningError {
  return new DaemonNotRunningError(`no wal daemon is running for ${paths.dir}`, { suggestions: ['start one with `wal daemon start`'] })
}

/** The last lines of the daemon's log, for an error message. */
function logTail(paths: DaemonPaths, lines = 5): string {
  try {
    return readFileSync(paths.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

/** The token to send: daemon.token (or WAL_DAEMON_TOKEN), else the one the daemon generated. */
function clientToken(config: ResolvedConfig, paths: DaemonPaths): string | null {
  return config.daemon.token ?? readTokenFile(paths)
}

async function call<T>({ config, paths, configError }: DaemonContext, method: string, path: string, timeoutMs = 60_000): Promise<{ status: number; body: T }> {
  const pid = runningPid(paths)
  const state = readStateFile(paths)
  if (pid === null || state === null || state.pid !== pid) throw notRunning(paths)
  let response: DaemonResponse
  try {
    response = await daemonRequest(config.daemon, `${state.url}${path}`, { method, timeoutMs, token: clientToken(config, paths) })
  } catch (error) {
    if (error instanceof ConfigError) throw error
    throw new BackendUnavailableError(`the daemon (pid ${pid}) does not answer on ${state.url}: ${(error as Error).message}`, { cause: error, suggestions: ['see its log: wal daemon logs'] })
  }
  if (response.status === 401) {
    // The token could not be read from the invalid config: its error is what to fix.
    if (configError !== undefined) throw configError
    throw new ConfigError(`the daemon refused the bearer token`, {
      code: 'WAL_DAEMON_AUTH',
      suggestions: ['use the config the daemon runs with (daemon.token), or set WAL_DAEMON_TOKEN', `without either, the token is read from ${paths.tokenFile}: check that you can read it`],
    })
  }
  return { status: response.status, body: JSON.parse(response.text) as T }
}

export interface DaemonStartOptions extends CommonOptions {
  host?: string
  port?: number
  noAuth?: boolean
  allowPlainHttp?: boolean
  /** The `wal` executable to run (bin/run.js). */
  bin: string
}

export interface DaemonStartResult {
  pid: number
  url: string
  logFile: string
  /** Where clients find the bearer token the daemon generated; null when the config sets one, or auth is off. */
  tokenFile: string | null
}

/** Starts `wal daemon run` detached, logging to the state directory; resolves once it is ready. */
export async function startDaemon(options: DaemonStartOptions): Promise<DaemonStartResult> {
  const { config, paths } = await context(options)
  const running = runningPid(paths)
  if (running !== null) {
    throw new DaemonRunningError(`a wal daemon is already running for ${paths.dir} (pid ${running})`, {
      details: { pid: running },
      suggestions: ['see it with `wal daemon status`; stop it with `wal daemon stop`, or apply config changes with `wal daemon reload`'],
    })
  }
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 })
  // The single executable is its own interpreter and script: it takes the command words directly.
  const args = isBinary() ? ['daemon', 'run'] : [options.bin, 'daemon', 'run']
  if (config.path !== null) args.push('--config', resolve(options.io.cwd, config.path))
  if (config.context !== null) args.push('--context', config.context)
  if (options.host !== undefined) args.push('--host', options.host)
  if (options.port !== undefined) args.push('--port', String(options.port))
  if (options.noAuth) args.push('--no-auth')
  if (options.allowPlainHttp) args.push('--allow-plain-http')
  const logFd = openSync(paths.logFile, 'a', 0o600)
  let exited: { code: number | null; signal: string | null } | undefined
  let child
  try {
    child = spawn(process.execPath, args, { cwd: options.io.cwd, env: options.io.env, detached: true, stdio: ['ignore', logFd, logFd] })
  } finally {
    closeSync(logFd)
  }
  child.on('exit', (code, signal) => (exited = { code, signal }))
  child.unref()
  const pid = child.pid!
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    if (exited) {
      const why = logTail(paths)
      const message = `the daemon exited (${exited.code ?? exited.signal}) while starting${why ? `:\n${why}` : ''}`
      if (exited.code === 2) throw new DaemonRunningError(message)
      if (exited.code === 3) throw new ConfigError(message)
      throw new BackendUnavailableError(message, { code: 'WAL_DAEMON_START_FAILED', suggestions: [`see the whole log: ${paths.logFile}`] })
    }
    const state = readStateFile(paths)
    if (state?.pid === pid) {
      const ready = await daemonRequest(config.daemon, `${state.url}/readyz`, { method: 'GET', timeoutMs: 1000, token: null }).then((r) => r.status === 200).catch(() => false)
      if (ready) return { pid, url: state.url, logFile: paths.logFile, tokenFile: config.daemon.token === null && config.daemon.auth === 'token' && !options.noAuth ? paths.tokenFile : null }
    }
    if (Date.now() > deadline) {
      throw new BackendUnavailableError(`the daemon (pid ${pid}) was not ready within ${START_TIMEOUT_MS / 1000} s; it is left running`, {
        code: 'WAL_DAEMON_START_FAILED',
        suggestions: [`see its log: ${paths.logFile}`, 'stop it with `wal daemon stop`'],
      })
    }
    await sleep(POLL_MS)
  }
}

export interface DaemonStopOptions extends CommonOptions {
  /** How long to wait for the drain before killing it (a duration: "45s"); default: daemon.drainTimeoutMs + 10 s. */
  timeout?: string
}

export interface DaemonStopResult {
  running: boolean
  pid: number | null
  /** True when it did not exit within the timeout and was killed. */
  killed: boolean
  tookMs: number
  message: string
}

/** Asks the daemon to drain and exit (SIGTERM); kills it (SIGKILL) if it has not within the timeout. */
export async function stopDaemon(options: DaemonStopOptions): Promise<DaemonStopResult> {
  const timeoutOption = options.timeout === undefined ? undefined : parseDurationMs(options.timeout)
  if (options.timeout !== undefined && timeoutOption === undefined) {
    throw new UsageError(`--timeout "${options.timeout}" is not a duration`, { suggestions: ['use e.g. --timeout 45s'] })
  }
  const { config, paths } = await context(options)
  const pid = runningPid(paths)
  if (pid === null) {
    releasePidFile(paths, Number(existsSync(paths.pidFile) ? readFileSync(paths.pidFile, 'utf8').trim() : NaN))
    return { running: false, pid: null, killed: false, tookMs: 0, message: `no wal daemon was running for ${paths.dir}` }
  }
  const startedMs = Date.now()
  const timeoutMs = timeoutOption ?? config.daemon.drainTimeoutMs + 10_000
  process.kill(pid, 'SIGTERM')
  while (isAlive(pid) && Date.now() - startedMs < timeoutMs) await sleep(POLL_MS)
  let killed = false
  if (isAlive(pid)) {
    killed = true
    process.kill(pid, 'SIGKILL')
    while (isAlive(pid)) await sleep(POLL_MS)
  }
  releasePidFile(paths, pid)
  const tookMs = Date.now() - startedMs
  return {
    running: true,
    pid,
    killed,
    tookMs,
    message: killed
      ? `daemon ${pid} did not stop within ${timeoutMs} ms and was killed; what it had not committed is redone on the next start`
      : `daemon ${pid} drained and stopped in ${tookMs} ms`,
  }
}

export async function daemonStatus(options: CommonOptions): Promise<DaemonStatus> {
  return (await call<DaemonStatus>(await context(options), 'GET', '/v1/status')).body
}

/** Asks the daemon to re-read its config; an invalid config is an error (exit 3), and the daemon keeps the old one. */
export async function reloadDaemon(options: CommonOptions): Promise<ReloadResult> {
  const { body } = await call<ReloadResult>(await context(options), 'POST', '/v1/reload')
  if (!body.ok) {
    const cause = body.error as { code?: string; suggestions?: string[] } | undefined
    const error: WalError = new ConfigError(body.message, { code: cause?.code === 'WAL_CONFIG_INVALID' || cause?.code === undefined ? 'WAL_CONFIG_INVALID' : cause.code, suggestions: cause?.suggestions ?? [], details: { ...body } })
    throw error
  }
  return body
}

export interface DaemonLogsOptions extends CommonOptions {
  follow: boolean
  /** Stops following. */
  signal: AbortSignal
}

/** Copies the daemon's log file to stdout; with follow, keeps copying what is appended until stopped. */
export async function daemonLogs(options: DaemonLogsOptions): Promise<void> {
  const { paths } = await context(options)
  if (!existsSync(paths.logFile)) {
    throw new NotFoundError(`no daemon log at ${paths.logFile}`, { suggestions: ['`wal daemon start` writes it; under `wal daemon run`, logs go to stdout'] })
  }
  let position = 0
  const decoder = new StringDecoder('utf8')
  const copy = async (): Promise<void> => {
    const size = statSync(paths.logFile).size
    if (size < position) position = 0 // rotated or truncated
    if (size === position) return
    const stream = createReadStream(paths.logFile, { start: position, end: size - 1 })
    for await (const chunk of stream) {
      // JSON lines stay the same JSON (a control character becomes its \u escape), and cannot drive the terminal.
      const text = escapeControl(decoder.write(chunk as Buffer))
      if (!options.io.stdout.write(text)) await new Promise((resolve) => options.io.stdout.once('drain', resolve))
    }
    position = size
  }
  await copy()
  while (options.follow && !options.signal.aborted) {
    await sleep(200, undefined, { signal: options.signal }).catch(() => undefined)
    await copy()
  }
}
