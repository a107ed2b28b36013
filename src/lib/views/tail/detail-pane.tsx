import { Box, Text } from 'ink'

import { encodeEnvelope, type LogRecord } from '../../envelope/envelope.js'
import type { ExplainReport } from '../../explain/explain.js'
import type { LookupState } from './use-lookup.js'
import { escapeLine } from '../../cli/render.js'

/** The selected mutation: its envelope, and per target where it stands with its attempts (from `wal explain`). */
export function DetailPane({ record, history }: { record: LogRecord; history: LookupState<ExplainReport> }) {
  // One line per envelope field (payload and failures compact), so the whole envelope fits a terminal.
  const fields = Object.entries(JSON.parse(encodeEnvelope(record)) as Record<string, unknown>)
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      <Text bold>{escapeLine(`mutation ${record.id}  ${record.partition}:${record.offset}  key=${JSON.stringify(record.key)}`)}</Text>
      {fields.map(([name, value]) => (
        <Text key={name} wrap="truncate-end">{escapeLine(`${name}: ${JSON.stringify(value)}`)}</Text>
      ))}
      <Text bold>history</Text>
      {history.status === 'loading' && <Text dimColor>looking it up…</Text>}
      {history.status === 'failed' && <Text color="red">{escapeLine(`lookup failed: ${history.message}`)}</Text>}
      {history.status === 'done' && history.value.targets.length === 0 && <Text dimColor>no targets</Text>}
      {history.status === 'done' &&
        history.value.targets.map((t) => (
          <Box key={t.target} flexDirection="column">
            <Text>{escapeLine(`target ${t.target}: ${t.status} — ${t.detail}`)}</Text>
            {t.events.map((e, i) => (
              <Text key={i} dimColor={!e.code}>{escapeLine(`  ${e.at} ${e.event} (attempt ${e.attempt})${e.code ? ` ${e.errorClass} ${e.code}: ${e.message}` : ''}`)}</Text>
            ))}
          </Box>
        ))}
    </Box>
  )
}
