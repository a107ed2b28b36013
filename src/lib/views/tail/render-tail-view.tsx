/** The render entry of the live tail: the only place ink is started for it. */
import { render } from 'ink'

import type { ExplainReport } from '../../explain/explain.js'
import type { Io } from '../../io/context.js'
import type { TailSource } from '../../tail/tail.js'
import { TailView, type QuitReason } from './tail-view.js'

export interface TailViewOutcome {
  records: number
  /** Ctrl-C: the command ends as an interrupted tail does. */
  interrupted: boolean
}

export async function renderTailView({ source, io, lookup }: { source: TailSource; io: Io; lookup: (id: string) => Promise<ExplainReport> }): Promise<TailViewOutcome> {
  let reason: QuitReason | null = null
  let seen = 0
  const app = render(
    <TailView
      namespace={source.namespace}
      records={source.records}
      lookup={lookup}
      onQuit={(why) => {
        reason ??= why
        source.stop()
      }}
      onDone={(state) => (seen = state.seen)}
    />,
    {
      stdout: io.stdout as NodeJS.WriteStream,
      stderr: io.stderr as NodeJS.WriteStream,
      stdin: io.stdin as NodeJS.ReadStream,
      // ctrl-c arrives as a key in raw mode; the view ends the stream itself, so the log closes cleanly.
      exitOnCtrlC: false,
      patchConsole: false,
    },
  )
  await app.waitUntilExit()
  return { records: seen, interrupted: reason === 'interrupt' }
}
