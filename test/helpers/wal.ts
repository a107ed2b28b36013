/**
 * Runs the real `wal` binary as a user would: a fresh state directory, a home without config, a
 * working directory of its own. Every test gets its own sandbox.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = join(ROOT, 'bin', 'run.js')
/**
 * How tests start `wal`: bin/run.js on this Node, or with WAL_BIN=dist/wal (`npm run test:binary`) the
 * single executable, which brings its own Node.
 */
export const WAL_COMMAND: readonly string[] = process.env.WAL_BIN ? [resolve(ROOT, process.env.WAL_BIN)] : [process.execPath, BIN]
/** WAL_COMMAND as shell words, for tests that run wal through a shell or a terminal. */
export const WAL_SHELL = WAL_COMMAND.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  input?: string | Buffer
  env?: Record<string, string | undefined>
  cwd?: string
  uid?: number
  gid?: number
}

export interface Sandbox {
  /** Temporary folder holding everything below. */
  dir: string
  /** WAL_HOME. */
  stateDir: string
  /** cwd for commands (no config file unless a test writes one). */
  cwd: string
  env: Record<string, string>
  run(args: readonly string[], options?: RunOptions): Promise<RunResult>
  spawn(args: readonly string[], options?: RunOptions): ChildProcess
  cleanup(): void
}

export function makeSandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'wal-test-'))
  const stateDir = join(dir, 'state')
  const cwd = join(dir, 'work')
  const home = join(dir, 'home')
  mkdirSync(cwd)
  mkdirSync(home)
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    WAL_HOME: stateDir,
    TZ: 'UTC',
    // The single executable unpacks itself once per build: share that between sandboxes.
    ...(process.env.WAL_BIN ? { WAL_BINARY_CACHE: join(tmpdir(), `wal-test-binary-cache-${process.getuid?.() ?? 'user'}`) } : {}),
  }
  /** Processes not yet exited: a test that fails before stopping its consumer must not leave it running. */
  const running = new Set<ChildProcess>()
  const spawnWal = (args: readonly string[], options: RunOptions = {}): ChildProcess => {
    const merged: Record<string, string> = { ...env }
    for (const [k, v] of Object.entries(options.env ?? {})) {
      if (v === undefined) delete merged[k]
      else merged[k] = v
    }
    const child = spawn(WAL_COMMAND[0]!, [...WAL_COMMAND.slice(1), ...args], {
      cwd: options.cwd ?? cwd,
      env: merged,
      stdio: ['pipe', 'pipe', 'pipe'],
      uid: options.uid,
      gid: options.gid,
    })
    running.add(child)
    child.on('exit', () => running.delete(child))
    return child
  }
  return {
    dir,
    stateDir,
    cwd,
    env,
    spawn: spawnWal,
    run(args, options = {}) {
      return new Promise((resolve, reject) => {
        const child = spawnWal(args, options)
        let stdout = ''
        let stderr = ''
        child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
        child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
        child.on('error', reject)
        child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
        child.stdin!.on('error', () => undefined)
        child.stdin!.end(options.input ?? '')
      })
    },
    cleanup() {
      for (const child of running) child.kill('SIGKILL')
      running.clear()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Parses NDJSON output. */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T)
}

/** NDJSON input from objects. */
export function ndjson(records: readonly unknown[]): string {
  return records.map((r) => JSON.stringify(r)).join('\n') + '\n'
}

/** Polls until `check` returns a truthy value, instead of sleeping a fixed time. */
export async function waitFor<T>(check: () => T | Promise<T>, { timeoutMs = 20_000, intervalMs = 20 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`waitFor: condition not met within ${timeoutMs}ms`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** An ack line of `wal produce --json`. */
export interface Ack {
  line: number
  id: string
  namespace: string
  partition: number
  offset: number
  durable: boolean
  duplicate?: boolean
}

/** An envelope as `wal tail --json` prints it. */
export interface Envelope {
  v: number
  id: string
  namespace: string
  key: string
  payload: unknown
  payloadEncoding: 'json' | 'base64'
  headers: Record<string, string>
  createdAt: string
  notBefore: string | null
  target: string | null
  idempotencyKey: string | null
  attempts: number
  failures: unknown[]
  partition: number
  offset: number
  appendedAt: string
}
