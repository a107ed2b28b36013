/**
 * A `wal daemon run` in the foreground for a test: started on a free port, found through its state
 * file, and always killed at the end (kill() in afterEach), so no daemon outlives its test.
 *
 * Writes carry the daemon's bearer token as a user's would: read from the token file the daemon made in
 * its state directory (`$WAL_HOME/daemon/token`), unless a test passes its own authorization header.
 */
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { waitFor, type Sandbox } from './wal.js'

export interface TestDaemon {
  child: ChildProcess
  pid: number
  url: string
  /** The generated token (null when the config sets one, or auth is off). */
  token: string | null
  /** What it logged so far (stdout: JSON lines; stderr: errors). */
  output(): string
  /** JSON log lines with this event. */
  events(event: string): Array<Record<string, unknown>>
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const live = new Set<number>()

/** Whether the process runs: a zombie (dead, not yet reaped by whoever adopted it) does not. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3))
  } catch {
    return !existsSync('/proc/self/stat')
  }
}

/** Kills every daemon a test started and has not stopped, and any given pid (detached ones). */
export async function killDaemons(...pids: Array<number | undefined>): Promise<void> {
  for (const pid of [...live, ...pids]) {
    if (pid === undefined || !isAlive(pid)) continue
    process.kill(pid, 'SIGKILL')
    await waitFor(() => !isAlive(pid), { timeoutMs: 5000 }).catch(() => undefined)
  }
  live.clear()
}

/** Bearer tokens of the daemons tests talk to, by their URL's origin. */
const tokens = new Map<string, string>()

/** The token a daemon generated, as `$(cat $WAL_HOME/daemon/token)` reads it; null when there is none. */
export function daemonToken(wal: Sandbox): string | null {
  try {
    return readFileSync(daemonFile(wal, 'token'), 'utf8').trim()
  } catch {
    return null
  }
}

/** Makes post() (and authHeaders()) send the token of the daemon of `wal` to `url` (a daemon started detached). */
export function useDaemonToken(wal: Sandbox, url: string): void {
  const token = daemonToken(wal)
  if (token !== null) tokens.set(new URL(url).origin, token)
}

/** `{ authorization: 'Bearer …' }` for the daemon at `url`, when its token is known. */
export function authHeaders(url: string): Record<string, string> {
  const token = tokens.get(new URL(url).origin)
  return token === undefined ? {} : { authorization: `Bearer ${token}` }
}

export function daemonFile(wal: Sandbox, name: 'daemon.pid' | 'daemon.json' | 'daemon.log' | 'token'): string {
  return join(wal.stateDir, 'daemon', name)
}

export function daemonState(wal: Sandbox): { pid: number; url: string } | null {
  try {
    return JSON.parse(readFileSync(daemonFile(wal, 'daemon.json'), 'utf8')) as { pid: number; url: string }
  } catch {
    return null
  }
}

export async function startForegroundDaemon(wal: Sandbox, args: readonly string[] = []): Promise<TestDaemon> {
  const child = wal.spawn(['daemon', 'run', '--port', '0', ...args])
  const pid = child.pid!
  live.add(pid)
  let output = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(pid)
      resolve({ code, signal })
    }),
  )
  let gone = false
  void exited.then(() => (gone = true))
  const url: string = await waitFor<string>(
    async () => {
      if (gone) throw new Error(`the daemon exited while starting:\n${output}`)
      const state = daemonState(wal)
      if (state?.pid !== pid) return ''
      const ready = await fetch(`${state.url}/readyz`).then((r) => r.ok).catch(() => false)
      return ready ? state.url : ''
    },
    { timeoutMs: 30_000 },
  )
  useDaemonToken(wal, url)
  const events = (event: string): Array<Record<string, unknown>> =>
    output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === event)
  return {
    child,
    pid,
    url,
    token: daemonToken(wal),
    output: () => output,
    events,
    exited,
    async stop() {
      child.kill('SIGTERM')
      return (await exited).code
    },
  }
}

/** POSTs JSON to the daemon (with its token, when known); returns the status and parsed body. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(url, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...authHeaders(url), ...headers },
  })
  const text = await response.text()
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: response.headers }
}

export const pidFileExists = (wal: Sandbox): boolean => existsSync(daemonFile(wal, 'daemon.pid'))
