/**
 * The live tail's filter, apart from the view: `key=VALUE` matches that key exactly; any other text
 * matches records whose text line (key, headers, payload) contains it; empty matches everything.
 */
import type { LogRecord } from '../../envelope/envelope.js'
import { formatText } from '../../tail/tail.js'

export type RecordFilter = (record: LogRecord) => boolean

export function parseFilter(text: string): RecordFilter {
  const trimmed = text.trim()
  if (trimmed === '') return () => true
  if (trimmed.startsWith('key=')) {
    const key = trimmed.slice('key='.length)
    return (record) => record.key === key
  }
  return (record) => formatText(record).includes(trimmed)
}
