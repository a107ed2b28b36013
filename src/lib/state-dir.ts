/**
 * The state directory holds every payload written (logs, key-value stores) and the daemon's token: it
 * is the user's alone. wal creates it 0700 and its files 0600 (the process umask is 077, see index.ts);
 * one made before, or by hand, that others can read gets a warning naming the fix, as ssh does. One that
 * others can write, or that another user owns (a directory planted under /tmp, a WAL_HOME pointing into
 * someone else's home), is refused: they could read every payload, swap the log or plant the token.
 */
import { statSync } from 'node:fs'

import { ConfigError } from './errors.js'

/**
 * Refuses (exit 3, `WAL_STATE_UNSAFE`) a state directory another user owns (root aside) or others can
 * write; returns a warning when others may read or enter it; else null. A directory not there yet is
 * made by wal, 0700.
 */
export function checkStateDir(dir: string): string | null {
  let stat
  try {
    stat = statSync(dir)
  } catch {
    return null
  }
  const mode = stat.mode & 0o777
  const octal = mode.toString(8).padStart(4, '0')
  const quoted = `'${dir.replaceAll("'", "'\\''")}'`
  const uid = process.getuid?.()
  if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) {
    throw new ConfigError(`the state directory ${dir} belongs to another user (uid ${stat.uid}): they could read every payload in it and change the log`, {
      code: 'WAL_STATE_UNSAFE',
      details: { stateDir: dir, uid: stat.uid },
      suggestions: ['point WAL_HOME at a directory of your own (wal makes it, 0700)', `or, if you trust it, take it over: chown -R $(id -un) ${quoted}`],
    })
  }
  if ((mode & 0o022) !== 0) {
    throw new ConfigError(`the state directory ${dir} can be written by other users (mode ${octal}): they could swap the log or the daemon's token`, {
      code: 'WAL_STATE_UNSAFE',
      details: { stateDir: dir, mode: octal },
      suggestions: [`if it is yours: chmod -R go-rwx ${quoted}`, 'or point WAL_HOME at a directory of your own (wal makes it, 0700)'],
    })
  }
  if ((mode & 0o077) === 0) return null
  return `warning: the state directory ${dir} is open to other users (mode ${octal}): they can read every payload in it; fix it with: chmod -R go-rwx ${quoted}`
}
