import { Box, Text } from 'ink'

export interface TailFooterProps {
  namespace: string
  seen: number
  matched: number
  ratePerSec: number
  filter: string
  done: boolean
}

/** Counts, rate and the filter in force, with the keys that work. */
export function TailFooter({ namespace, seen, matched, ratePerSec, filter, done }: TailFooterProps) {
  return (
    <Box flexDirection="column">
      <Text>
        <Text bold>{namespace}</Text>
        {`  seen ${seen}  shown ${matched}  ${ratePerSec.toFixed(1)}/s`}
        {filter === '' ? '' : `  filter: ${filter}`}
        {done ? '  (ended)' : ''}
      </Text>
      <Text dimColor>/ filter  ↑↓ select  enter details  esc close  q quit</Text>
    </Box>
  )
}
