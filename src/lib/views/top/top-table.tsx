import { Box, Text } from 'ink'

import type { TopRow } from '../../top/top.js'
import { tableLines } from './top-rows.js'

/** The rows, header in bold; a row with dead letters or an open breaker stands out. */
export function TopTable({ rows }: { rows: readonly TopRow[] }) {
  const [header, ...lines] = tableLines(rows)
  return (
    <Box flexDirection="column">
      <Text bold>{header}</Text>
      {lines.map((line, i) => (
        <Text key={`${rows[i]!.namespace}/${rows[i]!.target}/${rows[i]!.shard}`} wrap="truncate-end" color={rows[i]!.dlqDepth > 0 || /^(open|half-open)\b/.test(rows[i]!.circuit) ? 'yellow' : undefined}>
          {line}
        </Text>
      ))}
      {rows.length === 0 && <Text dimColor>no consumers to show (no namespace with targets, or none matches the filter)</Text>}
    </Box>
  )
}
