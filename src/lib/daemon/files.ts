/**
 * The daemon's files in the state directory: a pid file (one daemon per state directory), a state file
 * saying where its HTTP API listens, its log file (when started detached), and the bearer token it
 * generated (when the config sets none). All are 0600 in a 0700 directory.
 */
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { UsageError } from '../errors.js'

export interface DaemonPaths {
  dir: string
  pidFile: string
  stateFile: string
  logFile: string
  /** The generated bearer token (used when daemon.token and WAL_DAEMON_TOKEN are unset). */
  tokenFile: string
}

export function daemonPaths(stateDir: string): DaemonPaths {
  const dir = join(stateDir, 'daemon')
  return { dir, pidFile: join(dir, 'daemon.pid'), stateFile: join(dir, 'daemon.json'), logFile: join(dir, 'daemon.log'), tokenFile: join(dir, 'token') }
}

/** What a running daemon writes once it listens. */
export interface DaemonStateFile {
  pid: number
  url: string
  startedAt: string
  configPath: string | null
}

/**
 * Whether the process exists and has not died: a zombie (killed, not yet reaped by its parent) still
 * passes kill(pid, 0), so /proc/PID/stat's state is read where there is one (Linux).
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: it exists, but belongs to someone else.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch (error) {
    // No /proc (macOS): kill(pid, 0) is all there is. With /proc, a pid gone meanwhile is dead.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT' || !existsSync('/proc/self/stat')
  }
  // "PID (comm) S …": the command name may hold spaces and parentheses; the state follows the last ")".
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  return state !== 'Z' && state !== 'X' && state !== 'x'
}

/**
 * Whether the pid is a `wal daemon run` (a pid file outlives its daemon after kill -9, and the pid may
 * since belong to another program). Without /proc, or when its command line cannot be read, it is taken to be.
 */
export function isWalDaemon(pid: number): boolean {
  let argv: string[]
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return true
  }
  const at = argv.indexOf('daemon')
  return at > 0 && argv[at + 1] === 'run'
}

/** The pid in the pid file when that process is alive and a wal daemon; null when there is none (a stale file counts as none). */
export function runningPid(paths: DaemonPaths): number | null {
  let text: string
  try {
    text = readFileSync(paths.pidFile, 'utf8')
  } catch {
    return null
  }
  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) && (pid === process.pid || isWalDaemon(pid)) ? pid : null
}

/** The token in the token file; null when there is none. */
export function readTokenFile(paths: DaemonPaths): string | null {
  try {
    const token = readFileSync(paths.tokenFile, 'utf8').trim()
    return token === '' ? null : token
  } catch {
    return null
  }
}

/** The token in the token file, made (256 random bits, mode 0600) when there is none yet. */
export function ensureTokenFile(paths: DaemonPaths): string {
  const existing = readTokenFile(paths)
  if (existing !== null) {
    // Made by hand, or copied in: only its owner may read it.
    if ((statSync(paths.tokenFile).mode & 0o077) !== 0) chmodSync(paths.tokenFile, 0o600)
    return existing
  }
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 })
  const token = randomBytes(32).toString('base64url')
  try {
    writeFileSync(paths.tokenFile, `${token}\n`, { flag: 'wx', mode: 0o600 })
    chmodSync(paths.tokenFile, 0o600)
    return token
  } catch (error) {
    // Another daemon start made it first: use that one.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readTokenFile(paths) ?? token
    throw error
  }
}

export function readStateFile(paths: DaemonPaths): DaemonStateFile | null {
  try {
    return JSON.parse(readFileSync(paths.stateFile, 'utf8')) as DaemonStateFile
  } catch {
    return null
  }
}

export class DaemonRunningError extends UsageError {
  static override readonly defaultCode: string = 'WAL_DAEMON_RUNNING'
}

/**
 * Takes the pid file for this process, or says which daemon holds it. A pid file left by a daemon that
 * died (kill -9, power loss) is taken over.
 */
export function acquirePidFile(paths: DaemonPaths): void {
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 })
  for (let tries = 0; tries < 3; tries++) {
    try {
      writeFileSync(paths.pidFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
      return
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const pid = runningPid(paths)
    if (pid !== null && pid !== process.pid) {
      throw new DaemonRunningError(`a wal daemon is already running for ${paths.dir} (pid ${pid})`, {
        details: { pid },
        suggestions: ['see it with `wal daemon status`; stop it with `wal daemon stop`'],
      })
    }
    rmSync(paths.pidFile, { force: true })
  }
  throw new DaemonRunningError(`cannot take the pid file ${paths.pidFile}: another daemon is starting`)
}

/** Removes the pid and state files if they are still this process's. */
export function releasePidFile(paths: DaemonPaths, pid = process.pid): void {
  try {
    if (Number(readFileSync(paths.pidFile, 'utf8').trim()) !== pid) return
  } catch {
    return
  }
  rmSync(paths.stateFile, { force: true })
  rmSync(paths.pidFile, { force: true })
}
