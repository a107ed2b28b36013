/** Consumes `wal top`'s core stream: the latest snapshot, held while paused. */
import { useEffect, useRef, useState } from 'react'

import type { TopSnapshot } from '../../top/top.js'

export interface SnapshotsState {
  snapshot: TopSnapshot | null
  done: boolean
  error: Error | null
}

export function useSnapshots(snapshots: AsyncIterable<TopSnapshot>, paused: boolean): SnapshotsState {
  const [state, setState] = useState<SnapshotsState>({ snapshot: null, done: false, error: null })
  const pausedRef = useRef(paused)
  pausedRef.current = paused
  useEffect(() => {
    let cancelled = false
    void (async () => {
      try {
        for await (const snapshot of snapshots) {
          if (cancelled) return
          if (!pausedRef.current) setState((s) => ({ ...s, snapshot }))
        }
        if (!cancelled) setState((s) => ({ ...s, done: true }))
      } catch (error) {
        if (!cancelled) setState((s) => ({ ...s, done: true, error: error as Error }))
      }
    })()
    return () => {
      cancelled = true
    }
  }, [snapshots])
  return state
}
