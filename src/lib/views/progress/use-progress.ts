/** Follows a ProgressEmitter: re-renders at most every intervalMs, and once more when it finishes. */
import { useEffect, useState } from 'react'

import type { ProgressEmitter } from '../../io/progress.js'
import type { ProgressState } from './progress-model.js'

export function useProgress(emitter: ProgressEmitter, { intervalMs = 100, now = Date.now }: { intervalMs?: number; now?: () => number } = {}): ProgressState {
  const read = (): ProgressState => ({ ...emitter.snapshot, nowMs: now() })
  const [state, setState] = useState<ProgressState>(read)
  useEffect(() => {
    // A timer, not every 'update': a fast producer counts thousands of times a second.
    const timer = setInterval(() => setState(read()), intervalMs)
    const onFinish = (): void => {
      clearInterval(timer)
      setState(read())
    }
    emitter.on('finish', onFinish)
    if (emitter.snapshot.finished) onFinish()
    return () => {
      clearInterval(timer)
      emitter.off('finish', onFinish)
    }
    // read() depends only on emitter and now.
  }, [emitter, intervalMs, now])
  return state
}
