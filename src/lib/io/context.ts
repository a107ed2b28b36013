/** What a service needs from the process: streams and environment, injectable for tests. */
import type { Readable, Writable } from 'node:stream'

export interface Io {
  stdin: Readable & { isTTY?: boolean }
  stdout: Writable
  stderr: Writable
  env: NodeJS.ProcessEnv
  cwd: string
}

/** The real process. */
export function processIo(): Io {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }
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
