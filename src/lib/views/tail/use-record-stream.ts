/**
 * Consumes the tail's core stream for the live view: records arrive in batches (one re-render per
 * flush, not per record), filtered by the current filter, with counts and a rate.
 */
import { useEffect, useRef, useState } from 'react'

import type { LogRecord } from '../../envelope/envelope.js'
import { RateMeter } from '../rate-meter.js'
import type { RecordFilter } from './tail-filter.js'

/** How many matching records stay selectable for the detail pane. */
export const RECENT_LIMIT = 200

export interface RecordStreamState {
  /** The matching records of the last flush, with a number that changes on each flush. */
  batch: { seq: number; records: LogRecord[] }
  /** The latest matching records, oldest first, at most RECENT_LIMIT. */
  recent: LogRecord[]
  seen: number
  matched: number
  ratePerSec: number
  done: boolean
  error: Error | null
}

export interface RecordStreamOptions {
  filter: RecordFilter
  /** Longest time a record waits before it is shown. */
  flushMs?: number
  now?: () => number
}

export function useRecordStream(records: AsyncIterable<LogRecord>, { filter, flushMs = 100, now = Date.now }: RecordStreamOptions): RecordStreamState {
  const [state, setState] = useState<RecordStreamState>({ batch: { seq: 0, records: [] }, recent: [], seen: 0, matched: 0, ratePerSec: 0, done: false, error: null })
  // The filter applies to records from the moment it changes; the loop below reads it on each record.
  const filterRef = useRef(filter)
  filterRef.current = filter

  useEffect(() => {
    let cancelled = false
    let pending: LogRecord[] = []
    let seen = 0
    let pendingSeen = 0
    const startedAtMs = now()
    const meter = new RateMeter()
    const flush = (final: boolean, error: Error | null = null): void => {
      if (cancelled) return
      const batch = pending
      const batchSeen = pendingSeen
      pending = []
      pendingSeen = 0
      meter.add(batchSeen, now())
      setState((s) => ({
        batch: batch.length > 0 ? { seq: s.batch.seq + 1, records: batch } : s.batch,
        recent: batch.length > 0 ? [...s.recent, ...batch].slice(-RECENT_LIMIT) : s.recent,
        seen,
        matched: s.matched + batch.length,
        ratePerSec: meter.perSecond(now(), startedAtMs),
        done: final,
        error,
      }))
    }
    // Also refreshes the rate while nothing arrives, so it falls to 0 in a lull.
    const timer = setInterval(() => flush(false), flushMs)
    void (async () => {
      try {
        for await (const record of records) {
          if (cancelled) break
          seen++
          pendingSeen++
          if (filterRef.current(record)) pending.push(record)
        }
        flush(true)
      } catch (error) {
        flush(true, error as Error)
      } finally {
        clearInterval(timer)
      }
    })()
    return () => {
      cancelled = true
      clearInterval(timer)
    }
  }, [records, flushMs, now])

  return state
}
