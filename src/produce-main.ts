/**
 * `wal produce` on its own, for bin/run.js: scripts call it once per mutation, in loops. The same CLI as
 * src/index.ts (oclif, the generated manifest, the same run), with only the produce command in its table,
 * bundled so that it loads in a few files rather than the thirty-odd chunks the full table is split into
 * (each ES module file costs start-up time of its own). oclif gets package.json with its command table
 * and hooks pointed here, so the full table is not loaded beside it.
 */
import { readFileSync } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

import type { Command } from '@oclif/core/command'
import type { PJSON } from '@oclif/core/interfaces'

import Produce from './commands/produce.js'
import { runCli } from './lib/cli/run.js'

export { commandNotFound } from './lib/cli/suggest.js'

export const COMMANDS: Record<string, Command.Class> = { produce: Produce }

/** Runs `wal produce …`; `dir` is the bin's import.meta.url. */
export async function run(dir: string): Promise<void> {
  const file = fileURLToPath(import.meta.url)
  const root = dirname(dirname(file))
  const pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PJSON
  // package.json names the full table (./dist/index.js) for commands and hooks; this file exports the same names.
  const full = typeof pjson.oclif.commands === 'object' ? pjson.oclif.commands.target : undefined
  const self = `./${relative(root, file).split(sep).join('/')}`
  if (typeof pjson.oclif.commands === 'object') pjson.oclif.commands = { ...pjson.oclif.commands, target: self }
  for (const [event, hooks] of Object.entries(pjson.oclif.hooks ?? {})) {
    pjson.oclif.hooks![event] = ([] as unknown[]).concat(hooks).map((hook) => (typeof hook === 'object' && hook !== null && 'target' in hook && hook.target === full ? { ...hook, target: self } : hook)) as never
  }
  await runCli(dir, { root, pjson })
}
