/** Sorting, filtering and cells of `wal top`'s table, apart from the view. */
import type { TopRow, TopSnapshot } from '../../top/top.js'
import { escapeLine } from '../../cli/render.js'

export const SORT_KEYS = ['lag', 'throughput', 'dlq', 'name'] as const
export type SortKey = (typeof SORT_KEYS)[number]

export function nextSort(sort: SortKey): SortKey {
  return SORT_KEYS[(SORT_KEYS.indexOf(sort) + 1) % SORT_KEYS.length]!
}

const byName = (a: TopRow, b: TopRow): number => a.namespace.localeCompare(b.namespace) || a.target.localeCompare(b.target) || a.shard.localeCompare(b.shard)

/** Largest first for numbers; names break ties so rows do not jump between refreshes. */
export function sortRows(rows: readonly TopRow[], sort: SortKey): TopRow[] {
  const value = (row: TopRow): number => (sort === 'lag' ? row.lag : sort === 'throughput' ? (row.throughputPerSec ?? -1) : sort === 'dlq' ? row.dlqDepth : 0)
  return [...rows].sort((a, b) => value(b) - value(a) || byName(a, b))
}

/** Rows whose namespace contains the text (all when empty). */
export function filterRows(rows: readonly TopRow[], namespace: string): TopRow[] {
  return namespace === '' ? [...rows] : rows.filter((r) => r.namespace.includes(namespace))
}

export const COLUMNS = ['NAMESPACE', 'TARGET', 'SHARD', 'STATE', 'RATE/S', 'LAG', 'IN-FLIGHT', 'RETRIES', 'WAITING', 'CIRCUIT', 'DLQ', 'TOP ERRORS'] as const

export function cells(row: TopRow): string[] {
  return [
    row.namespace,
    row.target,
    row.shard,
    row.state,
    row.throughputPerSec === null ? '-' : row.throughputPerSec.toFixed(1),
    String(row.lag),
    row.inFlight === null ? '-' : String(row.inFlight),
    String(row.retries),
    String(row.waiting),
    row.circuit,
    String(row.dlqDepth),
    row.topErrors.map((e) => `${e.errorClass}/${e.code}×${e.count}`).join(' ') || '-',
  ].map(escapeLine)
}

/** The table as padded text lines: the one-shot output when piped, and the live view's rows. */
export function tableLines(rows: readonly TopRow[]): string[] {
  const all = [[...COLUMNS], ...rows.map(cells)]
  const widths = COLUMNS.map((_, i) => Math.max(...all.map((r) => r[i]!.length)))
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
}

/** One snapshot as text: what `wal top` prints when piped. */
export function renderTopSnapshot(snapshot: TopSnapshot): string {
  return [`${snapshot.at} from ${snapshot.source === 'daemon' ? 'the daemon' : 'the backends'}`, ...tableLines(snapshot.rows)].join('\n')
}
