/** How the embedded log says its SQLite file cannot be used: one wording for the log and its consumer state. */
import { statfsSync } from 'node:fs'
import { dirname } from 'node:path'

import { BackendUnavailableError } from '../../errors.js'
import { formatDurationMs } from '../../time.js'
import { LOG_LOCKED_CODE } from '../backend.js'

/** How long a write waits for another process's lock on the log before giving up. */
export const LOCK_TIMEOUT_MS = 30_000

/** SQLite's primary result code (extended codes carry it in the low byte). */
export function sqliteErrorCode(error: unknown): number | undefined {
  const code = (error as { errcode?: number } | undefined)?.errcode
  return code === undefined ? undefined : code & 0xff
}

/** Whether an error is SQLite's or the file system's (EACCES, ENOSPC, EIO, …): the file, not wal, is at fault. */
export function isStorageError(error: unknown): boolean {
  const errno = (error as NodeJS.ErrnoException | undefined)?.code
  return sqliteErrorCode(error) !== undefined || (typeof errno === 'string' && /^E[A-Z]+$/.test(errno))
}

/** Whether the file system holding `path` has (next to) no room left: SQLite reports that as an I/O error at times. */
function noRoomFor(path: string): boolean {
  try {
    const fs = statfsSync(dirname(path))
    return fs.bavail * fs.bsize < 64 * 1024
  } catch {
    return false
  }
}

export function unavailable(path: string, action: string, error: unknown, what = 'the embedded log', waitedMs = LOCK_TIMEOUT_MS): BackendUnavailableError {
  const code = sqliteErrorCode(error)
  const errno = (error as NodeJS.ErrnoException).code
  if (code === 5 || code === 6) {
    // Not the file's fault: a process holds the write lock, most likely a wal stopped mid-write
    // (SIGSTOP, a suspended terminal job, a debugger) or stuck.
    return new BackendUnavailableError(`cannot ${action} ${what} ${path}: another process held its write lock for more than ${formatDurationMs(waitedMs)}`, {
      code: LOG_LOCKED_CODE,
      cause: error,
      details: { path },
      suggestions: [
        `find the process holding it (fuser ${path}, or lsof ${path}): a wal stopped with Ctrl-Z or SIGSTOP holds it until it goes on (fg, or kill -CONT); end it if it is stuck`,
        'nothing that was acknowledged is lost; run the command again once the lock is free',
      ],
    })
  }
  const reason =
    code === 13 || errno === 'ENOSPC' || (code === 10 && noRoomFor(path))
      ? 'the disk is full'
      : errno === 'EACCES' || errno === 'EPERM' || code === 8 || code === 14
        ? 'permission denied: the state directory or the log file cannot be written'
        : (error as Error).message
  return new BackendUnavailableError(`cannot ${action} ${what} ${path}: ${reason}`, {
    cause: error,
    details: { path },
    suggestions: [
      'make the state directory writable, or point WAL_HOME (or stateDir in the config) elsewhere',
      'nothing that was acknowledged is lost; run the command again once fixed',
    ],
  })
}
