/**
 * Running a command without oclif's Config. `Config.load` reads package.json, the manifest of every
 * command, the plugins and the theme file on each start; a command's own methods use none of it but the
 * bin's name (for `WAL_*` variables), the user agent and the preparse hook (wal has none), which
 * `commandConfig` gives. Used for every command but those that read the command table (help, version,
 * autocomplete) and any command line oclif would read differently (see `directCommand`), which go the
 * usual way through `execute`.
 */
import { readFileSync } from 'node:fs'

import type { Command } from '@oclif/core/command'
import type { Config } from '@oclif/core/config'
import { flush } from '@oclif/core/flush'
import { handle } from '@oclif/core/handle'

import { asWalProcess } from './run.js'

/** Commands that need oclif's whole Config (the command table, the version): never run directly. */
const NEEDS_CONFIG = new Set(['help', 'version', 'autocomplete'])

/**
 * The id of the command `argv` names, as oclif would read it with spaces between topic and command
 * (`dlq ls -n x` is dlq:ls), and the arguments after it; undefined when it is not for a direct run: help
 * asked for (`--help`, `-h`), `--version`, a topic or an unknown command (oclif's own answers), or a word
 * right after a command that takes no arguments (oclif reads `tail extra` as a command "tail extra").
 */
export function directCommand(argv: readonly string[], ids: readonly string[], takesArgs: (id: string) => boolean): { id: string; argv: string[] } | undefined {
  if (argv.some((arg) => arg === '--help' || arg === '-h') || argv[0] === '--version') return undefined
  const known = new Set(ids)
  let id = ''
  let words = 0
  while (words < argv.length) {
    const next = id === '' ? argv[words]! : `${id}:${argv[words]}`
    if (!ids.some((candidate) => candidate === next || candidate.startsWith(`${next}:`))) break
    id = next
    words++
  }
  if (!known.has(id) || NEEDS_CONFIG.has(id)) return undefined
  const following = argv[words]
  if (following !== undefined && !following.startsWith('-') && !following.includes('=') && !takesArgs(id)) return undefined
  return { id, argv: argv.slice(words) }
}

/** Runs a command class as oclif's Command.run does, less its Config.load; `packageJson` is wal's own. */
export async function runDirect(command: Command.Class, id: string, argv: string[], packageJson: URL): Promise<void> {
  await asWalProcess(async () => {
    try {
      command.id = id
      const instance = new (command as unknown as new (argv: string[], config: Config) => Command)(argv, commandConfig(packageJson))
      // oclif's own steps: init, run, catch (which owns wal's errors and exit codes), finally.
      await (instance as unknown as { _run(): Promise<unknown> })._run()
      await flush()
    } catch (error) {
      // What wal's catch rethrows (the exit with its code) or a bug: reported and exited as oclif does.
      await handle(error instanceof Error ? error : new Error(String(error)))
    }
  })
}

/** The part of oclif's Config that a command's own methods read. */
function commandConfig(packageJson: URL): Config {
  const pjson = JSON.parse(readFileSync(packageJson, 'utf8')) as { name: string; version: string; oclif: { bin: string } }
  const bin = pjson.oclif.bin
  const scopedEnvVarKey = (key: string): string => `${bin.replaceAll('@', '').replaceAll(/[/-]/g, '_')}_${key}`.toUpperCase()
  const config = {
    bin,
    name: pjson.name,
    version: pjson.version,
    pjson,
    userAgent: `${pjson.name}/${pjson.version} ${process.platform}-${process.arch === 'ia32' ? 'x86' : process.arch} node-${process.version}`,
    scopedEnvVarKey,
    scopedEnvVarKeys: (key: string) => [scopedEnvVarKey(key)],
    scopedEnvVar: (key: string) => process.env[scopedEnvVarKey(key)] || undefined,
    scopedEnvVarTrue: (key: string) => ['1', 'true'].includes(process.env[scopedEnvVarKey(key)] ?? ''),
    runHook: async () => ({ successes: [], failures: [] }),
  }
  return config as unknown as Config
}
