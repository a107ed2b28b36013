// Shared helpers of the services script: fetching artifacts, starting and stopping the servers we own,
// waiting on them with real client calls.
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import { CACHE_DIR, RUN_DIR } from './endpoints.js'
import './quiet-kafkajs.js'

export function say(message) {
  process.stderr.write(`services: ${message}\n`)
}

/** A failure the user can act on: printed without a stack trace. */
export class ServiceError extends Error {}

/** Throws a ServiceError that names the missing tool and how to get it. */
export function requireTool(command, how) {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' })
  if (found.status !== 0) throw new ServiceError(`${command} is not installed: ${how}`)
}

export function ensureDir(...parts) {
  const dir = join(...parts)
  mkdirSync(dir, { recursive: true })
  return dir
}

export const logPath = (name) => join(ensureDir(RUN_DIR, 'logs'), `${name}.log`)
const pidPath = (name) => join(ensureDir(RUN_DIR, 'pids'), `${name}.pid`)

/** The last lines of a server's log, for error messages. */
export function logTail(name, lines = 40) {
  const path = logPath(name)
  if (!existsSync(path)) return '(no log yet)'
  return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n')
}

/**
 * Resolves Maven artifacts (with their runtime dependencies) into CACHE_DIR/<name>/lib, once: a marker
 * file records what was fetched, so a second run does nothing.
 */
export function mavenFetch(name, artifacts, { exclusions = [] } = {}) {
  const dir = ensureDir(CACHE_DIR, name)
  const lib = join(dir, 'lib')
  const wanted = createHash('sha256').update(JSON.stringify({ artifacts, exclusions })).digest('hex')
  const marker = join(dir, '.fetched')
  if (existsSync(marker) && readFileSync(marker, 'utf8') === wanted && existsSync(lib)) return lib
  requireTool('mvn', 'install Maven (Debian: apt-get install maven)')
  say(`fetching ${name} from Maven Central (first run only)…`)
  const deps = artifacts
    .map((coordinates) => {
      const [groupId, artifactId, version] = coordinates.split(':')
      const excl = exclusions.length
        ? `<exclusions>${exclusions.map((e) => { const [g, a] = e.split(':'); return `<exclusion><groupId>${g}</groupId><artifactId>${a}</artifactId></exclusion>` }).join('')}</exclusions>`
        : ''
      return `<dependency><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId><version>${version}</version>${excl}</dependency>`
    })
    .join('\n    ')
  writeFileSync(
    join(dir, 'pom.xml'),
    `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>wal.services</groupId><artifactId>${name}</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    ${deps}
  </dependencies>
</project>
`,
  )
  rmSync(lib, { recursive: true, force: true })
  const result = spawnSync(
    'mvn',
    ['-B', '-q', 'org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${lib}`],
    { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  )
  if (result.status !== 0 || !existsSync(lib) || readdirSync(lib).length === 0) {
    throw new ServiceError(`fetching ${name} with Maven failed:\n${(result.stdout + result.stderr).split('\n').slice(-30).join('\n')}`)
  }
  writeFileSync(marker, wanted)
  return lib
}

/**
 * The pid of a server this script started and that still runs, if any. The pid file also records the
 * command, checked against /proc: after a reboot or a killed session the same pid may belong to another
 * program, which must not be mistaken for (or stopped as) our server.
 */
export function runningPid(name) {
  const path = pidPath(name)
  if (!existsSync(path)) return undefined
  const [pidText, command = ''] = readFileSync(path, 'utf8').split('\n')
  const pid = Number(pidText)
  let alive = false
  try {
    process.kill(pid, 0)
    const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : undefined
    alive = cmdline === undefined || cmdline.split('\0')[0] === command || command === ''
  } catch {
    alive = false
  }
  if (!alive) rmSync(path, { force: true })
  return alive ? pid : undefined
}

/** Starts a server in the background, detached, logging to RUN_DIR/logs/<name>.log; records its pid. */
export function startProcess(name, command, args, { cwd, env } = {}) {
  const log = openSync(logPath(name), 'a')
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', log, log] })
  closeSync(log)
  child.unref()
  writeFileSync(pidPath(name), `${child.pid}\n${command}`)
  return child.pid
}

/** Stops a server this script started (SIGTERM, then SIGKILL after a grace period). */
export async function stopProcess(name, { graceMs = 20_000 } = {}) {
  const pid = runningPid(name)
  if (pid === undefined) return false
  const signal = (sig) => {
    try {
      process.kill(-pid, sig) // the whole process group: JVMs and their children
    } catch {
      try {
        process.kill(pid, sig)
      } catch {
        // already gone
      }
    }
  }
  signal('SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline && runningPid(name) !== undefined) await sleep(200)
  if (runningPid(name) !== undefined) signal('SIGKILL')
  while (runningPid(name) !== undefined) await sleep(100)
  rmSync(pidPath(name), { force: true })
  return true
}

/** True when something accepts TCP connections at host:port. */
export function portOpen(hostPort) {
  const [host, port] = hostPort.replace(/^https?:\/\//, '').split(':')
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) })
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/**
 * Polls `check` (a real client call) until it returns true. On timeout, or when the server we started
 * died, throws a ServiceError with the tail of its log.
 */
export async function waitUntilReady(name, check, { timeoutMs, intervalMs = 1000 }) {
  const deadline = Date.now() + timeoutMs
  let lastError
  for (;;) {
    try {
      if (await check()) return
    } catch (error) {
      lastError = error
    }
    const owned = existsSync(pidPath(name))
    if (owned && runningPid(name) === undefined) {
      throw new ServiceError(`${name} exited while starting. Last lines of ${logPath(name)}:\n${logTail(name)}`)
    }
    if (Date.now() > deadline) {
      throw new ServiceError(
        `${name} was not ready within ${timeoutMs / 1000}s${lastError ? ` (last error: ${lastError.message})` : ''}. Last lines of ${logPath(name)}:\n${logTail(name)}`,
      )
    }
    await sleep(intervalMs)
  }
}
