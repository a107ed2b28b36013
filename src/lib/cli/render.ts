/**
 * Plain-text renderings of command results (the `--json` form is the result object itself), and the one
 * sanitizer every text output goes through (see `escapeControl`).
 */
import type { ConfigReport, ContextList } from '../config/show.js'
import type { ConsumeSummary } from '../consume/consume.js'
import type { DlqListing, DlqStatsGroup, ReplayPlan } from '../dlq/dlq.js'
import type { ExplainReport } from '../explain/explain.js'
import type { TxnReport } from '../txn/explain.js'
import type { AuditRecord, SkipEntry } from '../log/backend.js'
import type { NamespaceInit } from '../ns/init.js'
import type { NamespaceDetails, NamespaceSummary } from '../ns/ns.js'
import type { OffsetsReport, ResetResult } from '../offsets/offsets.js'
import type { SkipResult } from '../skip/skip.js'
import { formatBytes, plural } from '../format.js'

/**
 * Control characters (C0 but newline and tab, DEL, C1) and bidirectional overrides shown escaped
 * (`\u001b`, `\r`), so that data (keys, headers, error messages quoting payloads, names in a config)
 * can neither drive the terminal (retitle it, move the cursor, rewrite the screen) nor reorder the text
 * an operator reads. Text output only: `--json` stays exact.
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => (c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))
}

/** Also within one line: a newline or tab shown escaped (table cells, single-line fields). */
export function escapeLine(text: string): string {
  return escapeControl(text).replace(/[\n\t]/g, (c) => (c === '\n' ? '\\n' : '\\t'))
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/** What escapeControl escapes beyond C0: DEL, C1 controls and the bidirectional marks and overrides. */
const BEYOND_C0 = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/**
 * On a terminal, all that wal writes to it passes through this, `--json` included: a C1 control (which a
 * terminal may take as the start of an escape sequence, U+009B being CSI) or a bidirectional override
 * that came with the data (a key, a header) is shown as `\u009b`. In JSON such a character can only be
 * inside a string, where the escape is the same string to any JSON reader; into a pipe or a file nothing
 * changes, so `--json` there stays byte for byte what was stored. C0 controls need no guard here: JSON
 * escapes them, text output goes through escapeControl, and live views draw with ESC.
 */
export function guardTerminal(stream: NodeJS.WriteStream): void {
  const write = stream.write
  stream.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
    const text = typeof chunk === 'string' ? chunk.replace(BEYOND_C0, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : chunk
    return (write as (...args: unknown[]) => boolean).call(this, text, ...rest)
  } as typeof stream.write
}

function table(input: string[][]): string {
  const rows = input.map((r) => r.map(escapeLine))
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n')
}

export function renderNamespaceList(namespaces: readonly NamespaceSummary[]): string {
  return table([
    ['NAME', 'BACKEND', 'PARTITIONS', 'RECORDS', 'DESCRIPTION'],
    ...namespaces.map((ns) => [
      ns.name,
      ns.backend,
      String(ns.partitions),
      ns.records === null ? (ns.unavailable ? '?' : '-') : String(ns.records),
      ns.unavailable ? `unavailable: ${ns.unavailable}` : (ns.description ?? (ns.declared ? '' : '(not in config: created on first produce)')),
    ]),
  ])
}

export function renderNamespace(ns: NamespaceDetails): string {
  const lines = [
    `namespace:        ${ns.name}${ns.declared ? '' : ' (not in config)'}`,
    `backend:          ${ns.backend}`,
    `partitions:       ${ns.partitions}`,
    `maxPayloadBytes:  ${ns.settings.maxPayloadBytes} (${formatBytes(ns.settings.maxPayloadBytes)})`,
  ]
  if (ns.description) lines.push(`description:      ${ns.description}`)
  if (!ns.log) {
    lines.push('log:              none yet (created on first produce)')
    return lines.join('\n')
  }
  lines.push(`location:         ${ns.log.location}`)
  lines.push(`records:          ${ns.log.records}`)
  if (ns.log.sizeBytes !== null) lines.push(`size:             ${formatBytes(ns.log.sizeBytes)}`)
  lines.push('', table([['PARTITION', 'LOW', 'HIGH'], ...ns.marks.map((m) => [String(m.partition), String(m.low), String(m.high)])]))
  for (const c of ns.consumers) {
    lines.push('', `target ${c.target} (${c.type}): lag ${c.lag}, scheduled ${c.scheduled}, dead letters ${c.deadLetters}`)
    const owner = new Map(c.leases.map((l) => [l.partition, l.owner]))
    lines.push(
      table([
        ['PARTITION', 'COMMITTED', 'LAG', 'OWNER'],
        ...c.committed.map((o) => [String(o.partition), String(o.offset), String(o.lag), owner.get(o.partition) ?? '-']),
      ]),
    )
  }
  return lines.join('\n')
}

export function renderNamespaceInit(init: NamespaceInit): string {
  const rows = init.parts.map((p) => [p.role, p.name, p.status, p.partitions === null ? '-' : String(p.partitions), p.replicationFactor === null ? '-' : String(p.replicationFactor)])
  const warnings = init.parts.filter((p) => p.warning).map((p) => `warning: ${p.name} ${p.warning}`)
  return [`namespace ${init.namespace} (${init.backend})`, table([['ROLE', 'NAME', 'STATUS', 'PARTITIONS', 'REPLICAS'], ...rows]), ...warnings].join('\n')
}

export function renderConfigReport(report: ConfigReport): string {
  if (report.path === null) return 'no config file found: wal runs with its defaults (embedded namespaces, created on first produce)'
  const context = report.context === null ? '' : ` (context "${report.context}")`
  const valid = `${report.path}${context}: valid (${report.namespaces.length} namespace${report.namespaces.length === 1 ? '' : 's'}${report.namespaces.length > 0 ? `: ${report.namespaces.join(', ')}` : ''})`
  return [valid, ...report.warnings.map((w) => `warning: ${w}`)].join('\n')
}

export function renderContextList(list: ContextList): string {
  if (list.contexts.length === 0) return `${list.path ?? 'no config file found'}: no contexts (declare them under "contexts:")`
  return table([
    ['CURRENT', 'NAME', 'DEFAULT NAMESPACE', 'STATE DIR', 'NAMESPACES'],
    ...list.contexts.map((c) =>
      c.error !== undefined ? [c.current ? '*' : '', c.name, '-', `(invalid: ${c.error})`, '-'] : [c.current ? '*' : '', c.name, c.defaultNamespace!, c.stateDir!, c.namespaces!.join(',') || '-'],
    ),
  ])
}

export function renderConsumeSummary(summary: ConsumeSummary): string {
  return table([
    ['TARGET', 'APPLIED', 'RETRIED', 'SCHEDULED', 'DEAD-LETTERED', 'SKIPPED', 'PAUSED', 'LAG', 'PARTITIONS'],
    ...summary.targets.map((t) => [
      t.target,
      String(t.applied),
      String(t.retried),
      String(t.scheduled),
      String(t.deadLettered),
      String(t.skipped),
      String(t.circuitOpened),
      String(t.lag),
      t.partitions.join(',') || '-',
    ]),
  ])
}

/** The line under a consume summary when the run dead-lettered mutations (it then exits 8). */
export function renderDeadLetteredNotice(summary: ConsumeSummary): string {
  const n = summary.deadLettered
  return `wal: ${n} mutation${n === 1 ? ' was' : 's were'} dead-lettered during this run (exit 8); see: wal dlq ls -n ${summary.namespace}`
}

export function renderDeadLetters(entries: readonly DlqListing[]): string {
  if (entries.length === 0) return 'no entries'
  // Where the seq is not the entry's stable id (SQS), the ENTRY column shows that id, which dlq show takes.
  const stable = entries.every((e) => e.entry === String(e.seq))
  return table([
    [...(stable ? [] : ['ENTRY']), 'SEQ', 'ID', 'KEY', 'TARGET', 'CLASS', 'CODE', 'ATTEMPTS', 'REPLAYS', 'DEAD AT', 'MESSAGE'],
    ...entries.map((e) => [
      ...(stable ? [] : [e.entry]),
      `${e.seq}${e.parked ? ' (parked)' : ''}`,
      e.id,
      e.key,
      e.target,
      e.errorClass,
      e.code,
      String(e.attempts),
      String(e.replays),
      e.deadAt,
      e.message.length > 80 ? `${e.message.slice(0, 77)}...` : e.message,
    ]),
  ])
}

/** `filtered`: a filter flag was given, so an empty result says "for this filter". */
export function renderDeadLetterStats(stats: { total: number; groups: readonly DlqStatsGroup[] }, filtered = false): string {
  if (stats.total === 0) return filtered ? 'no DLQ entry matches this filter' : 'the DLQ is empty'
  return `${plural(stats.total, 'entry', 'entries')}${filtered ? ' (for this filter)' : ''}\n${table([
    ['COUNT', 'TARGET', 'CLASS', 'CODE', 'FIRST SEEN', 'LAST SEEN', 'PARKED', 'EXAMPLE'],
    ...stats.groups.map((g) => [String(g.count), g.target, g.errorClass, g.code, g.firstSeen, g.lastSeen, String(g.parked), g.example.slice(0, 100)]),
  ])}`
}

export function renderReplayPlan(plan: ReplayPlan): string {
  let head = plan.dryRun
    ? `dry run: would replay ${plural(plan.replayed, 'entry', 'entries')} into "${plan.toNamespace}" and park ${plan.parked} (nothing changed)`
    : `replayed ${plural(plan.replayed, 'entry', 'entries')} into "${plan.toNamespace}", parked ${plan.parked}`
  if (plan.unparked > 0) head += `; ${plan.unparked} of them ${plan.dryRun ? 'are' : 'were'} parked (--include-parked)`
  if (plan.parkedLeftOut > 0) {
    head += `\n${plan.parkedLeftOut} matching ${plan.parkedLeftOut === 1 ? 'entry is' : 'entries are'} parked by the loop guard and left out: add --include-parked to replay ${plan.parkedLeftOut === 1 ? 'it' : 'them'}`
  }
  if (plan.poison > 0) {
    head += `\n${plan.poison} poison ${plan.poison === 1 ? 'entry' : 'entries'} (records that could not be decoded) not replayed: inspect with wal dlq show, export and repair them, then purge`
  }
  if (plan.groups.length === 0) return head
  return `${head}\n${table([['TARGET', 'CLASS', 'COUNT'], ...plan.groups.map((g) => [g.target, g.errorClass, String(g.count)])])}`
}

export function renderOffsets(report: OffsetsReport): string {
  if (report.offsets.length === 0) return `namespace "${escapeLine(report.namespace)}" has no targets`
  return table([
    ['TARGET', 'PARTITION', 'COMMITTED', 'LOW', 'HIGH', 'LAG', 'OWNER'],
    ...report.offsets.map((o) => [o.target, String(o.partition), String(o.committed), String(o.low), String(o.high), String(o.lag), o.owner ?? '-']),
  ])
}

export function renderResetPlan(result: ResetResult): string {
  const reapplied = result.plan.reduce((n, r) => n + r.reapplied, 0)
  const skipped = result.plan.reduce((n, r) => n + r.skipped, 0)
  const what = `${reapplied} mutation${reapplied === 1 ? '' : 's'} to apply again, ${skipped} to pass by`
  const head = result.executed
    ? `reset target "${result.target}" of namespace "${result.namespace}" (${result.to}): ${what}`
    : `dry run: would reset target "${result.target}" of namespace "${result.namespace}" (${result.to}): ${what} (nothing changed; add --execute to apply)`
  const fenced = result.fenced.length === 0 ? '' : `\nfenced ${[...new Set(result.fenced.map((f) => f.owner))].join(', ')} (partitions ${result.fenced.map((f) => f.partition).join(',')}): it continues from the new offsets`
  return `${escapeLine(head)}${escapeControl(fenced)}\n${table([
    ['PARTITION', 'CURRENT', 'NEW', 'APPLIED AGAIN', 'PASSED BY', 'OWNER'],
    ...result.plan.map((r) => [String(r.partition), String(r.current), String(r.next), String(r.reapplied), String(r.skipped), r.owner ?? '-']),
  ])}`
}

export function renderSkip(result: SkipResult): string {
  const where = result.target === null ? 'every target' : `target "${result.target}"`
  const verb = result.undone ? `no longer skipped at ${where}` : `skipped at ${where}`
  const absent = result.notInLog.length === 0 ? '' : `; not in the log (marked all the same): ${result.notInLog.join(', ')}`
  return escapeLine(`${result.ids.length} mutation${result.ids.length === 1 ? '' : 's'} of namespace "${result.namespace}" ${verb}${result.undone ? ` (${result.changed} entr${result.changed === 1 ? 'y' : 'ies'} removed)` : ''}${result.undone ? '' : absent}`)
}

export function renderSkipList(list: { namespace: string; skips: readonly SkipEntry[] }): string {
  if (list.skips.length === 0) return `no mutations of namespace "${escapeLine(list.namespace)}" are marked to skip`
  return table([
    ['ID', 'TARGET', 'MARKED', 'BY', 'REASON'],
    ...list.skips.map((s) => [s.id, s.target ?? '(every target)', new Date(s.atMs).toISOString(), s.actor, s.reason ?? '']),
  ])
}

export function renderAudit(records: readonly AuditRecord[]): string {
  if (records.length === 0) return 'no operator actions recorded'
  return records.map((r) => `${new Date(r.atMs).toISOString()} ${r.actor} ${r.action} ${JSON.stringify(r.details)}`).join('\n')
}

/** `wal explain TXN_ID`. */
function renderTxn(report: TxnReport): string {
  const lines = [`transaction ${escapeLine(report.txn)} in namespace "${report.namespace}": ${report.state} — ${report.detail}`]
  lines.push(`  opened ${report.openedAt}${report.committedAt ? `, committed ${report.committedAt}` : ''}${report.abortedAt ? `, aborted ${report.abortedAt}` : ''}`)
  for (const p of report.parts) lines.push(`  part ${p.seq}: ${p.id} key ${escapeLine(JSON.stringify(p.key))} at ${p.partition}:${p.offset}${p.target ? ` for target ${escapeLine(p.target)}` : ''}`)
  lines.push(report.marker ? `  marker: ${report.marker.id} at ${report.marker.partition}:${report.marker.offset}, ${report.marker.appendedAt}` : '  marker: none')
  for (const t of report.targets) lines.push(`target ${escapeLine(t.target)}: ${t.status} (${t.partsApplied}/${report.parts.length} parts) — ${t.detail}`)
  return lines.join('\n')
}

export function renderExplain(report: ExplainReport | TxnReport): string {
  if ('txn' in report) return renderTxn(report)
  const lines = [`mutation ${report.id} in namespace "${report.namespace}", key ${JSON.stringify(report.key)}, created ${report.createdAt}`]
  for (const w of report.writes) {
    lines.push(
      `  ${w.replay === 0 ? 'produced' : `replayed (#${w.replay})`} ${w.appendedAt} at ${w.partition}:${w.offset}` +
        `${w.target ? ` for target ${w.target}` : ''}${w.notBefore ? `, not before ${w.notBefore}` : ''}`,
    )
  }
  for (const t of report.targets) {
    lines.push(`target ${t.target}: ${t.status} — ${t.detail}`)
    if (t.plan !== undefined) lines.push(`  applied as ${t.plan}`)
    for (const d of t.deliveries) {
      // With one delivery its line would repeat the target's: only its events follow.
      const indent = t.deliveries.length > 1 ? '    ' : '  '
      if (t.deliveries.length > 1) {
        lines.push(`  ${d.replay === 0 ? 'produced' : `replay #${d.replay}`} (${d.partition}:${d.offset}): ${d.status} — ${d.detail}`)
      }
      for (const e of d.events) {
        lines.push(`${indent}${e.at} ${e.event} (attempt ${e.attempt})${e.code ? ` ${e.errorClass} ${e.code}: ${e.message}` : ''}`)
      }
    }
  }
  return lines.join('\n')
}
