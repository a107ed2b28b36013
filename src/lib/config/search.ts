/**
 * cosmiconfig behind one function (loaded with the services, never by `--help` or `--version`).
 */
import { cosmiconfig } from 'cosmiconfig'

export interface FoundConfig {
  config: unknown
  filepath: string
  isEmpty?: boolean
}

/** Loads `path`, or searches from `cwd`: .walrc*, wal.config.*, package.json#wal, then ~/.config/wal. */
export async function findConfig(path: string | undefined, cwd: string | undefined): Promise<FoundConfig | null> {
  const explorer = cosmiconfig('wal', { searchStrategy: 'global', cache: false })
  return path ? explorer.load(path) : explorer.search(cwd)
}
