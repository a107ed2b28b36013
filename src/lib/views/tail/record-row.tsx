import { Text } from 'ink'

import type { LogRecord } from '../../envelope/envelope.js'
import { formatText } from '../../tail/tail.js'

/** One mutation as `wal tail` prints it, cut at the terminal's width (the detail pane shows all of it). */
export function RecordRow({ record, selected = false }: { record: LogRecord; selected?: boolean }) {
  return (
    <Text wrap="truncate-end" inverse={selected}>
      {formatText(record).trimEnd()}
    </Text>
  )
}
