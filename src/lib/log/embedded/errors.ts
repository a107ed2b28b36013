/** How the embedded log says its SQLite file cannot be used: one wording for the log and its consumer state. */
import { statfsSync } from 'node:fs'
import { dirname } from 'node:path'

import { BackendUnavailableError } from '../../errors.js'

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

export function unavailable(path: string, action: string, error: unknown, what = 'the embedded log'): BackendUnavailableError {
  const code = sqliteErrorCode(error)
  const errno = (error as NodeJS.ErrnoException).code
  const reason =
    code === 5 || code === 6
      ? `the log stayed locked by another process for more than ${LOCK_TIMEOUT_MS / 1000}s`
      : code === 13 || errno === 'ENOSPC' || (code === 10 && noRoomFor(path))
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
