/**
 * `wal produce` on its own, for bin/run.js: scripts call it once per mutation, in loops. The same command
 * class as in the full table (src/index.ts), with the same parse, errors and exit codes, bundled so that it
 * loads in a few files rather than the thirty-odd chunks the full table is split into (each ES module file
 * costs start-up time of its own), and run without oclif's Config: that reads the manifest of every command,
 * the plugins and the theme, and produce uses none of it. What produce's command does take from a config
 * (the bin's name for `WAL_*` variables, the user agent, the preparse hook, of which wal has none) is given
 * here. Anything else on the command line (help, another command) goes to the full table.
 */
import { readFileSync } from 'node:fs'

import type { Config } from '@oclif/core/config'
import { flush } from '@oclif/core/flush'
import { handle } from '@oclif/core/handle'

import Produce from './commands/produce.js'
import { asWalProcess } from './lib/cli/run.js'

/** Runs `wal produce …`; `dir` is the bin's import.meta.url. */
export async function run(dir: string): Promise<void> {
  const argv = process.argv.slice(2)
  // A word right after `produce` (not a flag, no '=') makes oclif read `produce <word>` as a command of
  // its own, which the full table answers (unknown command, with its suggestions).
  const word = argv[1] !== undefined && !argv[1].startsWith('-') && !argv[1].includes('=')
  if (argv[0] !== 'produce' || word || argv.some((arg) => arg === '--help' || arg === '-h')) {
    // A path esbuild does not follow: the full table is its own bundle, beside this one.
    const full = new URL('./index.js', import.meta.url).href
    const { run: runFull } = (await import(full)) as { run(dir: string): Promise<void> }
    await runFull(dir)
    return
  }
  await asWalProcess(async () => {
    try {
      Produce.id = 'produce'
      const command = new Produce(argv.slice(1), commandConfig(new URL('../package.json', import.meta.url)))
      // oclif's own Command.run, less its Config.load: init, run, catch (which owns wal's errors), finally.
      await (command as unknown as { _run(): Promise<unknown> })._run()
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
