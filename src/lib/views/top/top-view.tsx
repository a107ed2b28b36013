import { Box, Text, useApp, useInput } from 'ink'
import { useEffect, useState } from 'react'

import type { TopSnapshot } from '../../top/top.js'
import { TopTable } from './top-table.js'
import { filterRows, nextSort, sortRows, type SortKey } from './top-rows.js'
import { useSnapshots } from './use-snapshots.js'
import { escapeLine } from '../../cli/render.js'

export interface TopViewProps {
  snapshots: AsyncIterable<TopSnapshot>
  /** Ends the stream (q); the view exits once it has. */
  onQuit: () => void
}

/** `wal top` on a terminal: the table refreshed live; keys to sort, filter by namespace, pause, quit. */
export function TopView({ snapshots, onQuit }: TopViewProps) {
  const { exit } = useApp()
  const [sort, setSort] = useState<SortKey>('lag')
  const [paused, setPaused] = useState(false)
  const [namespace, setNamespace] = useState('')
  const [draft, setDraft] = useState<string | null>(null)
  const { snapshot, done, error } = useSnapshots(snapshots, paused)

  useEffect(() => {
    if (done) exit(error ?? undefined)
  }, [done, error, exit])

  useInput((input, key) => {
    if (draft !== null) {
      if (key.return) {
        setNamespace(draft.trim())
        setDraft(null)
      } else if (key.escape) setDraft(null)
      else if (key.backspace || key.delete) setDraft(draft.slice(0, -1))
      else if (!key.ctrl && !key.meta && input) setDraft(draft + input)
      return
    }
    if (input === 'q' || (key.ctrl && input === 'c')) onQuit()
    else if (input === 's') setSort(nextSort(sort))
    else if (input === 'p' || input === ' ') setPaused(!paused)
    else if (input === '/') setDraft(namespace)
  })

  const rows = snapshot ? sortRows(filterRows(snapshot.rows, namespace), sort) : []
  return (
    <Box flexDirection="column">
      <Text>
        <Text bold>wal top</Text>
        {snapshot ? `  ${snapshot.at}  from ${snapshot.source === 'daemon' ? 'the daemon' : 'the backends'}` : '  reading…'}
        {`  sort: ${sort}`}
        {namespace === '' ? '' : `  namespace: ${namespace}`}
        {paused ? '  PAUSED' : ''}
      </Text>
      {snapshot && <TopTable rows={rows} />}
      {error && <Text color="red">{escapeLine(`error: ${error.message}`)}</Text>}
      {draft === null ? (
        <Text dimColor>s sort  / namespace  p pause  q quit</Text>
      ) : (
        <Text>
          <Text color="cyan">namespace (enter applies, esc cancels): </Text>
          {draft}
          <Text inverse> </Text>
        </Text>
      )}
    </Box>
  )
}
