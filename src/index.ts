/** Entry point: the command table oclif loads (explicit strategy) and `run` for bin/run.js. */
import { execute } from '@oclif/core/execute'
import { settings } from '@oclif/core/settings'

import ConfigShow from './commands/config/show.js'
import ConfigValidate from './commands/config/validate.js'
import Consume from './commands/consume.js'
import NsLs from './commands/ns/ls.js'
import NsShow from './commands/ns/show.js'
import Produce from './commands/produce.js'
import Tail from './commands/tail.js'

export const COMMANDS = {
  produce: Produce,
  tail: Tail,
  consume: Consume,
  'config:validate': ConfigValidate,
  'config:show': ConfigShow,
  'ns:ls': NsLs,
  'ns:show': NsShow,
}

/** Runs the CLI; `dir` is the bin's import.meta.url, from which oclif finds package.json. */
export async function run(dir: string): Promise<void> {
  // wal runs from its bundle, never from TypeScript sources: without this, NODE_ENV=development or test
  // makes oclif look for sources and load the TypeScript compiler on every command.
  settings.enableAutoTranspile = false
  await execute({ dir })
}
