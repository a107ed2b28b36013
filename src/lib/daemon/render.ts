/** Text output of the daemon commands (with --json, their results are printed as they are). */
import type { DaemonStatus, ReloadResult } from './daemon.js'

function duration(ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n')
}

export function renderDaemonStatus(status: DaemonStatus): string {
  const head = [
    `daemon pid ${status.pid}, up ${duration(status.uptimeMs)} (since ${status.startedAt}), ${status.draining ? 'draining' : status.ready ? 'ready' : 'starting'}`,
    `http: ${status.url} (${status.http.inFlight}/${status.http.maxInFlight} writes in flight)`,
    `config: ${status.configPath ?? '(none: zero-config)'}; state: ${status.stateDir}`,
  ]
  if (status.lastReload) head.push(`last reload: ${status.lastReload.at} ${status.lastReload.ok ? 'ok' : 'REJECTED'}: ${status.lastReload.message}`)
  if (status.consumers.length === 0) return [...head, 'no consumers (no namespace with targets yet)'].join('\n')
  const rows = [['NAMESPACE', 'TARGET', 'SHARD', 'STATE', 'PARTITIONS', 'APPLIED', 'RETRIED', 'DLQ', 'WAITING', 'LAG', 'LAST ERROR']]
  for (const c of status.consumers) {
    rows.push([
      c.namespace,
      c.target,
      c.shard,
      c.state + (c.restarts > 0 ? ` (${c.restarts} restarts)` : ''),
      c.partitions.length > 0 ? c.partitions.join(',') : '-',
      String(c.applied),
      String(c.retried),
      `${c.deadLettered} (${c.dlqDepth} held)`,
      String(c.waiting),
      String(c.lag),
      c.lastError ?? '',
    ])
  }
  return `${head.join('\n')}\n\n${table(rows)}`
}

export function renderReload(result: ReloadResult): string {
  const lines = [result.message]
  if (result.added.length > 0) lines.push(`  added:     ${result.added.join(', ')}`)
  if (result.removed.length > 0) lines.push(`  removed:   ${result.removed.join(', ')}`)
  if (result.changed.length > 0) lines.push(`  restarted: ${result.changed.join(', ')}`)
  return lines.join('\n')
}
