/**
 * The state directory holds every payload written (logs, key-value stores) and the daemon's token: it
 * is the user's alone. wal creates it 0700 and its files 0600 (the process umask is 077, see index.ts);
 * one made before, or by hand, that others can read gets a warning naming the fix, as ssh does.
 */
import { statSync } from 'node:fs'

/** A warning when `dir` exists and others (group or world) may read, write or enter it; else null. */
export function stateDirWarning(dir: string): string | null {
  let mode: number
  try {
    mode = statSync(dir).mode & 0o777
  } catch {
    return null
  }
  if ((mode & 0o077) === 0) return null
  return `warning: the state directory ${dir} is open to other users (mode ${mode.toString(8).padStart(4, '0')}): they can read every payload in it; fix it with: chmod -R go-rwx '${dir.replaceAll("'", "'\\''")}'`
}
