/**
 * `wal explain TXN_ID`: a transaction — its parts (where each is in the log), its marker, whether it is
 * open, committed or aborted, and per target how far its parts were applied.
 */
import type { ResolvedConfig } from '../config/schema.js'
import { namespaceSettings } from '../config/load.js'
import { plural } from '../format.js'
import type { LogBackend, TxnInfo } from '../log/backend.js'
import { TXN_ABORTED_CLASS } from './txn.js'

export interface TxnTargetReport {
  target: string
  /** applied: every part; applying: some parts; pending: none yet (marker not reached); aborted; open: no marker yet. */
  status: 'applied' | 'applying' | 'pending' | 'aborted' | 'open'
  /** Parts applied (or passed over: addressed elsewhere, dead-lettered) at this target. */
  partsApplied: number
  detail: string
}

export interface TxnReport {
  txn: string
  namespace: string
  state: TxnInfo['state']
  openedAt: string
  committedAt: string | null
  abortedAt: string | null
  detail: string
  parts: Array<{ seq: number; id: string; key: string; partition: number; offset: number; target: string | null }>
  marker: { id: string; partition: number; offset: number; appendedAt: string } | null
  targets: TxnTargetReport[]
}

const iso = (ms: number): string => new Date(ms).toISOString()

export async function explainTxn(log: LogBackend, config: ResolvedConfig, txn: TxnInfo): Promise<TxnReport> {
  const settings = namespaceSettings(config, log.namespace)
  const timeoutMs = settings.txnTimeoutMs
  const overdue = txn.state === 'open' && Date.now() - txn.openedAtMs > timeoutMs
  const detail =
    txn.state === 'committed'
      ? `committed: its marker closed ${plural(txn.partCount, 'part', 'parts')}`
      : txn.state === 'aborted'
        ? `aborted: no completion marker within txnTimeoutMs (${timeoutMs} ms); none of its ${txn.partCount === 0 ? '' : `${txn.partCount} `}parts is applied`
        : overdue
          ? `open past txnTimeoutMs (${timeoutMs} ms) without a marker: the next consumer aborts it; none of its parts is applied`
          : `open: ${plural(txn.partCount, 'part', 'parts')}, no marker yet (aborted if none comes by ${iso(txn.openedAtMs + timeoutMs)})`
  const dlq = await log.deadLetterQueue()
  const partIds = new Set(txn.parts.map((p) => p.record.id))
  const [aborted, deadParts] = await Promise.all([dlq.entries({ key: txn.id, errorClass: TXN_ABORTED_CLASS }), dlq.entries({}).then((all) => all.filter((e) => partIds.has(e.mutation.id)))]).finally(() => dlq.close())
  const targets: TxnTargetReport[] = []
  for (const target of settings.targets) {
    const store = await log.consumerStore(target.name)
    try {
      let progress = await store.txnProgress?.(txn.id)
      if (progress === undefined && txn.marker !== null && txn.state === 'committed') {
        // A log that keeps no per-part progress (Kafka): applied whole once the target's committed
        // offset is past the marker.
        const committed = (await store.committed([txn.marker.partition])).get(txn.marker.partition) ?? 0
        if (committed > txn.marker.offset) progress = { appliedSeq: Math.max(-1, ...txn.parts.map((p) => p.seq)), state: 'applied', atMs: txn.marker.appendedAtMs }
      }
      const partsApplied = progress === undefined || progress.state === 'aborted' ? 0 : txn.parts.filter((p) => p.seq <= progress.appliedSeq).length
      const filed = aborted.find((e) => e.target === target.name)
      let report: TxnTargetReport
      if (txn.state === 'aborted' || progress?.state === 'aborted') {
        report = { target: target.name, status: 'aborted', partsApplied: 0, detail: filed ? `never applied; in the DLQ (entry ${filed.seq}, class ${TXN_ABORTED_CLASS})` : 'never applied' }
      } else if (txn.state === 'open') {
        report = { target: target.name, status: 'open', partsApplied: 0, detail: 'waits for the marker' }
      } else if (progress?.state === 'applied') {
        const dead = deadParts.filter((e) => e.target === target.name).length
        report = {
          target: target.name,
          status: 'applied',
          partsApplied,
          detail: dead === 0 ? `all ${txn.partCount} parts applied, in order (${iso(progress.atMs)})` : `done (${iso(progress.atMs)}): ${txn.partCount - dead} parts applied in order, ${dead} dead-lettered (wal dlq ls)`,
        }
      } else if (progress !== undefined) {
        report = { target: target.name, status: 'applying', partsApplied, detail: `${partsApplied} of ${plural(txn.partCount, 'part', 'parts')} applied; resumes at part ${progress.appliedSeq + 1}` }
      } else {
        report = { target: target.name, status: 'pending', partsApplied: 0, detail: 'the marker is not consumed yet' }
      }
      targets.push(report)
    } finally {
      await store.close()
    }
  }
  return {
    txn: txn.id,
    namespace: log.namespace,
    state: txn.state,
    openedAt: iso(txn.openedAtMs),
    committedAt: txn.committedAtMs === null ? null : iso(txn.committedAtMs),
    abortedAt: txn.abortedAtMs === null ? null : iso(txn.abortedAtMs),
    detail,
    parts: txn.parts.map(({ seq, record }) => ({ seq, id: record.id, key: record.key, partition: record.partition, offset: record.offset, target: record.target })),
    marker: txn.marker === null ? null : { id: txn.marker.id, partition: txn.marker.partition, offset: txn.marker.offset, appendedAt: iso(txn.marker.appendedAtMs) },
    targets,
  }
}
