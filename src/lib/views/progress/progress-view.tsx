import { useApp } from 'ink'
import { useEffect } from 'react'

import type { ProgressEmitter } from '../../io/progress.js'
import { ProgressBar } from './progress-bar.js'
import { useProgress } from './use-progress.js'

/** The root of a progress display: the bar, until the work finishes. */
export function ProgressView({ emitter, intervalMs }: { emitter: ProgressEmitter; intervalMs?: number }) {
  const { exit } = useApp()
  const state = useProgress(emitter, intervalMs === undefined ? {} : { intervalMs })
  useEffect(() => {
    if (state.finished) exit()
  }, [state.finished, exit])
  return <ProgressBar state={state} />
}
