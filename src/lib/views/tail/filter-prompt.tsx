import { Text } from 'ink'

/** The filter being edited: applied on enter, dropped on esc. */
export function FilterPrompt({ draft }: { draft: string }) {
  return (
    <Text>
      <Text color="cyan">filter (key=K or text; enter applies, esc cancels): </Text>
      {draft}
      <Text inverse> </Text>
    </Text>
  )
}
