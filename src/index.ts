/** Entry point: the command table oclif loads (explicit strategy) and `run` for bin/run.js. */
import { execute } from '@oclif/core/execute'
import { settings } from '@oclif/core/settings'

import Autocomplete from './commands/autocomplete.js'
import ConfigGetContexts from './commands/config/get-contexts.js'
import ConfigShow from './commands/config/show.js'
import ConfigUseContext from './commands/config/use-context.js'
import ConfigValidate from './commands/config/validate.js'
import Consume from './commands/consume.js'
import DaemonLogs from './commands/daemon/logs.js'
import DaemonReload from './commands/daemon/reload.js'
import DaemonRun from './commands/daemon/run.js'
import DaemonStart from './commands/daemon/start.js'
import DaemonStatus from './commands/daemon/status.js'
import DaemonStop from './commands/daemon/stop.js'
import DlqAudit from './commands/dlq/audit.js'
import DlqExport from './commands/dlq/export.js'
import DlqLs from './commands/dlq/ls.js'
import DlqPurge from './commands/dlq/purge.js'
import DlqReplay from './commands/dlq/replay.js'
import DlqShow from './commands/dlq/show.js'
import DlqStats from './commands/dlq/stats.js'
import Explain from './commands/explain.js'
import Help from './commands/help.js'
import NsInit from './commands/ns/init.js'
import NsLs from './commands/ns/ls.js'
import NsShow from './commands/ns/show.js'
import OffsetsReset from './commands/offsets/reset.js'
import OffsetsShow from './commands/offsets/show.js'
import Produce from './commands/produce.js'
import Skip from './commands/skip.js'
import Tail from './commands/tail.js'
import Top from './commands/top.js'
import Version from './commands/version.js'

export { commandNotFound } from './lib/cli/suggest.js'

export const COMMANDS = {
  produce: Produce,
  tail: Tail,
  top: Top,
  consume: Consume,
  explain: Explain,
  skip: Skip,
  'offsets:show': OffsetsShow,
  'offsets:reset': OffsetsReset,
  'dlq:ls': DlqLs,
  'dlq:show': DlqShow,
  'dlq:stats': DlqStats,
  'dlq:replay': DlqReplay,
  'dlq:purge': DlqPurge,
  'dlq:export': DlqExport,
  'dlq:audit': DlqAudit,
  'config:validate': ConfigValidate,
  'config:show': ConfigShow,
  'config:use-context': ConfigUseContext,
  'config:get-contexts': ConfigGetContexts,
  'ns:init': NsInit,
  'ns:ls': NsLs,
  'ns:show': NsShow,
  'daemon:run': DaemonRun,
  'daemon:start': DaemonStart,
  'daemon:stop': DaemonStop,
  'daemon:status': DaemonStatus,
  'daemon:reload': DaemonReload,
  'daemon:logs': DaemonLogs,
  help: Help,
  version: Version,
  autocomplete: Autocomplete,
}

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
