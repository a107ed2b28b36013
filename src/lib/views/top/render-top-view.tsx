/** The render entry of `wal top`'s live view. */
import { render } from 'ink'

import type { Io } from '../../io/context.js'
import type { TopSnapshot } from '../../top/top.js'
import { TopView } from './top-view.js'

export async function renderTopView({ snapshots, io, stop }: { snapshots: AsyncIterable<TopSnapshot>; io: Io; stop: () => void }): Promise<void> {
  const app = render(<TopView snapshots={snapshots} onQuit={stop} />, {
    stdout: io.stdout as NodeJS.WriteStream,
    stderr: io.stderr as NodeJS.WriteStream,
    stdin: io.stdin as NodeJS.ReadStream,
    exitOnCtrlC: false,
    patchConsole: false,
  })
  await app.waitUntilExit()
}
