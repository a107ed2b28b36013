/** Entry point: the command table oclif loads (explicit strategy) and `run` for bin/run.js. */
import { existsSync } from 'node:fs'

import type { Command } from '@oclif/core/command'
import type { Config } from '@oclif/core/config'

import { directCommand, runDirect } from './lib/cli/direct.js'
import { runCli } from './lib/cli/run.js'

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

/**
 * Runs the CLI; `dir` is the bin's import.meta.url, from which oclif finds package.json. A command line
 * that names a command runs it without oclif's Config (lib/cli/direct.ts); help, the version, topics and
 * unknown commands go through oclif.
 */
export async function run(dir: string): Promise<void> {
  const argv = process.argv.slice(2)
  // Whether a command takes arguments is known once its class is loaded: the class of the id the words name.
  const named = directCommand(argv, Object.keys(LOADERS), () => true)
  const command: Command.Class | undefined = named && (await LOADERS[named.id]!()).default
  const direct = command && directCommand(argv, Object.keys(LOADERS), () => Object.keys(command.args ?? {}).length > 0 || command.strict === false)
  if (command && direct) await runDirect(command, direct.id, direct.argv, new URL('../package.json', import.meta.url))
  else await runCli(dir)
}

/** Runs the CLI all through oclif, its Config included, whatever the command line (what `run` must match). */
export async function runThroughOclif(dir: string): Promise<void> {
  await runCli(dir)
}
