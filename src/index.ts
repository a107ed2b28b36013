/** Entry point: the command table oclif loads (explicit strategy) and `run` for bin/run.js. */
import { existsSync } from 'node:fs'

import type { Command } from '@oclif/core/command'
import type { Config } from '@oclif/core/config'
import { execute } from '@oclif/core/execute'
import { settings } from '@oclif/core/settings'

/** Each command's module, imported when that command runs: a command path loads only its own code. */
const LOADERS: Record<string, () => Promise<{ default: Command.Class }>> = {
  produce: () => import('./commands/produce.js'),
  tail: () => import('./commands/tail.js'),
  top: () => import('./commands/top.js'),
  consume: () => import('./commands/consume.js'),
  explain: () => import('./commands/explain.js'),
  skip: () => import('./commands/skip.js'),
  'offsets:show': () => import('./commands/offsets/show.js'),
  'offsets:reset': () => import('./commands/offsets/reset.js'),
  'dlq:ls': () => import('./commands/dlq/ls.js'),
  'dlq:show': () => import('./commands/dlq/show.js'),
  'dlq:stats': () => import('./commands/dlq/stats.js'),
  'dlq:replay': () => import('./commands/dlq/replay.js'),
  'dlq:purge': () => import('./commands/dlq/purge.js'),
  'dlq:export': () => import('./commands/dlq/export.js'),
  'dlq:audit': () => import('./commands/dlq/audit.js'),
  'config:validate': () => import('./commands/config/validate.js'),
  'config:show': () => import('./commands/config/show.js'),
  'config:use-context': () => import('./commands/config/use-context.js'),
  'config:get-contexts': () => import('./commands/config/get-contexts.js'),
  'ns:init': () => import('./commands/ns/init.js'),
  'ns:ls': () => import('./commands/ns/ls.js'),
  'ns:show': () => import('./commands/ns/show.js'),
  'daemon:run': () => import('./commands/daemon/run.js'),
  'daemon:start': () => import('./commands/daemon/start.js'),
  'daemon:stop': () => import('./commands/daemon/stop.js'),
  'daemon:status': () => import('./commands/daemon/status.js'),
  'daemon:reload': () => import('./commands/daemon/reload.js'),
  'daemon:logs': () => import('./commands/daemon/logs.js'),
  help: () => import('./commands/help.js'),
  version: () => import('./commands/version.js'),
  autocomplete: () => import('./commands/autocomplete.js'),
}

export { commandNotFound } from './lib/cli/suggest.js'

/**
 * What oclif needs of a command the manifest already describes (its flags, help, summary come from
 * there): `run`, which imports the command's module and runs it with the id and plugin oclif assigned.
 */
function onUse(load: () => Promise<{ default: Command.Class }>): { id?: string; plugin?: Command.Class['plugin']; run: (argv: string[], config: Config) => Promise<unknown> } {
  const stub = {
    id: undefined as string | undefined,
    plugin: undefined as Command.Class['plugin'],
    async run(argv: string[], config: Config): Promise<unknown> {
      const { default: command } = await load()
      command.id = stub.id!
      command.plugin = stub.plugin
      return command.run(argv, config)
    },
  }
  return stub
}

/**
 * The command table oclif loads (explicit strategy). With the manifest there (every build writes it),
 * stand-ins that load a command on use; without it (`oclif manifest` deletes it before asking for the
 * table), the command classes themselves, from which it is written.
 */
export const COMMANDS: Record<string, unknown> = existsSync(new URL('../oclif.manifest.json', import.meta.url))
  ? Object.fromEntries(Object.entries(LOADERS).map(([id, load]) => [id, onUse(load)]))
  : Object.fromEntries(await Promise.all(Object.entries(LOADERS).map(async ([id, load]) => [id, (await load()).default] as const)))

/** Runs the CLI; `dir` is the bin's import.meta.url, from which oclif finds package.json. */
export async function run(dir: string): Promise<void> {
  // wal runs from its bundle, never from TypeScript sources: without this, NODE_ENV=development or test
  // makes oclif look for sources and load the TypeScript compiler on every command.
  settings.enableAutoTranspile = false
  // What wal creates (the state directory, its logs, key-value stores, token, daemon files; also file
  // targets' outputs) is the user's alone, whatever umask the shell has: 0700 directories, 0600 files.
  process.umask(0o077)
  // A safety net: should the event loop ever run dry while a command is still pending (a promise nobody
  // settles), say so in one line and exit 1, instead of Node's exit 13 "unsettled top-level await".
  let finished = false
  const onBeforeExit = (): void => {
    if (finished) return
    process.stderr.write('wal: internal error: the command stopped before it finished (a bug in wal; please report it, with WAL_DEBUG=1)\n')
    process.exit(1)
  }
  process.on('beforeExit', onBeforeExit)
  try {
    await execute({ dir })
  } finally {
    finished = true
    process.off('beforeExit', onBeforeExit)
  }
}
