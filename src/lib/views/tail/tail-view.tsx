import { Box, Static, Text, useApp, useInput, type Key } from 'ink'
import { useEffect, useMemo, useRef, useState } from 'react'

import type { LogRecord } from '../../envelope/envelope.js'
import type { ExplainReport } from '../../explain/explain.js'
import { DetailPane } from './detail-pane.js'
import { FilterPrompt } from './filter-prompt.js'
import { RecordRow } from './record-row.js'
import { TailFooter } from './tail-footer.js'
import { parseFilter } from './tail-filter.js'
import { useLookup } from './use-lookup.js'
import { useRecordStream } from './use-record-stream.js'
import { escapeLine } from '../../cli/render.js'

export type QuitReason = 'quit' | 'interrupt'

export interface TailViewProps {
  namespace: string
  records: AsyncIterable<LogRecord>
  /** The failure history of a mutation (what `wal explain` shows). */
  lookup: (id: string) => Promise<ExplainReport>
  /** Asks the stream to end (q or ctrl-c); the view exits once it has. */
  onQuit: (reason: QuitReason) => void
  /** The counts when the view exits. */
  onDone?: (state: { seen: number; error: Error | null }) => void
  flushMs?: number
}

/** `wal tail --follow` on a terminal: mutations as append-only rows, a footer, a filter and a detail pane. */
export function TailView({ namespace, records, lookup, onQuit, onDone, flushMs }: TailViewProps) {
  const { exit } = useApp()
  const [filterText, setFilterText] = useState('')
  const [draft, setDraft] = useState<string | null>(null)
  const [selectedId, setSelectedId] = useState<string | null>(null)
  const [detailOpen, setDetailOpen] = useState(false)
  const filter = useMemo(() => parseFilter(filterText), [filterText])
  const stream = useRecordStream(records, { filter, ...(flushMs === undefined ? {} : { flushMs }) })
  const selectedIndex = selectedId === null ? -1 : stream.recent.findIndex((r) => r.id === selectedId)
  const selected = selectedIndex < 0 ? null : stream.recent[selectedIndex]!
  const history = useLookup(lookup, detailOpen && selected ? selected.id : null)

  useEffect(() => {
    if (!stream.done) return
    onDone?.({ seen: stream.seen, error: stream.error })
    exit(stream.error ?? undefined)
  }, [stream.done, stream.seen, stream.error, onDone, exit])

  // The draft as the latest key left it: keys of one chunk (a paste, or typing before the view was ready)
  // are handled before React renders again.
  const draftRef = useRef<string | null>(null)
  const changeDraft = (next: string | null): void => {
    draftRef.current = next
    setDraft(next)
  }

  const onKey = (input: string, key: Partial<Key>): void => {
    const current = draftRef.current
    if (current !== null) {
      if (key.return) {
        setFilterText(current)
        changeDraft(null)
      } else if (key.escape) changeDraft(null)
      else if (key.backspace || key.delete) changeDraft(current.slice(0, -1))
      else if (!key.ctrl && !key.meta && input) changeDraft(current + input)
      return
    }
    if (input === 'q') return onQuit('quit')
    if (input === '/') return changeDraft(filterText)
    if (key.escape) {
      if (detailOpen) setDetailOpen(false)
      else setSelectedId(null)
      return
    }
    if (key.return && selected) return setDetailOpen(!detailOpen)
    const recent = stream.recent
    if (recent.length === 0) return
    if (key.upArrow || input === 'k') {
      const next = selectedIndex < 0 ? recent.length - 1 : Math.max(0, selectedIndex - 1)
      setSelectedId(recent[next]!.id)
    } else if (key.downArrow || input === 'j') {
      const next = selectedIndex < 0 ? recent.length - 1 : Math.min(recent.length - 1, selectedIndex + 1)
      setSelectedId(recent[next]!.id)
    }
  }

  useInput((input, key) => {
    if (key.ctrl && input === 'c') return onQuit('interrupt')
    // Several keys in one chunk (a filter pasted with its Enter, keys typed while the view started):
    // each is a key of its own, a line break an Enter.
    if ((input.length > 1 || input === '\n') && !key.ctrl && !key.meta && !input.startsWith('\u001b')) {
      for (const ch of input) {
        if (ch === '\r' || ch === '\n') onKey('', { return: true })
        else if (ch === '\u007f' || ch === '\b') onKey('', { backspace: true })
        else if (ch === '\u0003') return onQuit('interrupt')
        else onKey(ch, {})
      }
      return
    }
    onKey(input, key)
  })

  return (
    <>
      {/* A new <Static> per batch: each prints its rows once and holds nothing afterwards, so a long follow does not keep every record. */}
      <Static key={stream.batch.seq} items={stream.batch.records}>
        {(record) => <RecordRow key={record.id} record={record} />}
      </Static>
      <Box flexDirection="column">
        {selected && (
          <Box>
            <Text color="cyan">{'selected › '}</Text>
            <RecordRow record={selected} selected />
          </Box>
        )}
        {selected && detailOpen && <DetailPane record={selected} history={history} />}
        {stream.error && <Text color="red">{escapeLine(`error: ${stream.error.message}`)}</Text>}
        {draft !== null && <FilterPrompt draft={draft} />}
        <TailFooter namespace={namespace} seen={stream.seen} matched={stream.matched} ratePerSec={stream.ratePerSec} filter={filterText} done={stream.done} />
      </Box>
    </>
  )
}
