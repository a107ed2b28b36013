/** What a service needs from the process: streams and environment, injectable for tests. */
import type { Readable, Writable } from 'node:stream'

export interface Io {
  stdin: Readable & { isTTY?: boolean }
  stdout: Writable
  stderr: Writable
  env: NodeJS.ProcessEnv
  cwd: string
}

/**
 * The real process. Its streams are taken when first used: Node makes process.stdin (a socket for a pipe,
 * with what that loads) on first access, which a `wal produce -p` that never reads stdin need not pay.
 */
export function processIo(): Io {
  return {
    get stdin() {
      return process.stdin
    },
    get stdout() {
      return process.stdout
    },
    get stderr() {
      return process.stderr
    },
    env: process.env,
    cwd: process.cwd(),
  }
}

/** Options every service shares. */
export interface CommonOptions {
  /** `--config` / `WAL_CONFIG`. */
  configPath?: string
  /** `--context`: the config file's context to use (else WAL_CONTEXT, else `wal config use-context`'s). */
  context?: string
  /** Machine output. */
  json: boolean
  io: Io
}
