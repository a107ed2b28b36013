/** Runs the CLI through oclif: shared by the full command table (src/index.ts) and `wal produce`'s own (src/produce-main.ts). */
import { execute } from '@oclif/core/execute'
import type { LoadOptions } from '@oclif/core/interfaces'
import { settings } from '@oclif/core/settings'

import { guardTerminal } from './render.js'

/** `dir` is the bin's import.meta.url, from which oclif finds package.json; `loadOptions` as oclif takes them. */
export async function runCli(dir: string, loadOptions?: LoadOptions): Promise<void> {
  // wal runs from its bundle, never from TypeScript sources: without this, NODE_ENV=development or test
  // makes oclif look for sources and load the TypeScript compiler on every command.
  settings.enableAutoTranspile = false
  await asWalProcess(() => execute({ dir, loadOptions }))
}

/**
 * What every wal process does around its command, whichever way it is dispatched: the umask, the EPIPE
 * rule for stdout and the safety net for a command left pending.
 */
export async function asWalProcess(command: () => Promise<unknown>): Promise<void> {
  // What wal creates (the state directory, its logs, key-value stores, token, daemon files; also file
  // targets' outputs) is the user's alone, whatever umask the shell has: 0700 directories, 0600 files.
  process.umask(0o077)
  // Data in wal's output cannot drive the operator's terminal (see guardTerminal); asked of the file
  // descriptors, so that a command that never writes to one does not make its stream.
  const { isatty } = process.getBuiltinModule('node:tty')
  if (isatty(1)) guardTerminal(process.stdout)
  if (isatty(2)) guardTerminal(process.stderr)
  // A safety net: should the event loop ever run dry while a command is still pending (a promise nobody
  // settles), say so in one line and exit 1, instead of Node's exit 13 "unsettled top-level await".
  // When the reader of stdout goes away (`wal … | head`), what was left to print has nowhere to go: oclif's
  // final flush then waits for a 'drain' that never comes. That is not a bug but the end of the output, so
  // it ends quietly, as the reader asked.
  let finished = false
  let readerGone = false
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') readerGone = true
  })
  const onBeforeExit = (): void => {
    if (finished) return
    if (readerGone || process.stdout.destroyed) process.exit(process.exitCode ?? 0)
    process.stderr.write('wal: internal error: the command stopped before it finished (a bug in wal; please report it, with WAL_DEBUG=1)\n')
    process.exit(1)
  }
  process.on('beforeExit', onBeforeExit)
  try {
    await command()
  } finally {
    finished = true
    process.off('beforeExit', onBeforeExit)
  }
}
