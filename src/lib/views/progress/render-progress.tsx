/** The render entry of progress bars: ink on stderr, leaving stdout to the results. */
import { PassThrough } from 'node:stream'

import { render } from 'ink'

import type { Io } from '../../io/context.js'
import type { ProgressEmitter } from '../../io/progress.js'
import { ProgressView } from './progress-view.js'

export async function renderProgress(emitter: ProgressEmitter, io: Io): Promise<void> {
  const app = render(<ProgressView emitter={emitter} />, {
    // ink draws on its "stdout": here the terminal's stderr. It gets no input: stdin may be the data
    // being produced, and on a terminal ink would otherwise query it (keyboard protocol detection).
    stdout: io.stderr as NodeJS.WriteStream,
    stdin: new PassThrough() as unknown as NodeJS.ReadStream,
    stderr: io.stderr as NodeJS.WriteStream,
    patchConsole: false,
    exitOnCtrlC: false,
  })
  await app.waitUntilExit()
}
