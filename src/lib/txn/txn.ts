/**
 * Transactions: mutations of any keys, partitions and tables of one namespace, applied by consumers only
 * once their completion marker is in the log, part by part in sequence order.
 *
 * In the log a transaction is ordinary records marked by reserved headers (every backend carries
 * headers as they are): each part has `wal-txn` (the transaction id) and `wal-txn-seq` (0, 1, …); the
 * marker has `wal-txn` and `wal-txn-commit` (how many parts it closes), key = the transaction id. On the
 * wire they are these headers too, so a round trip (tail → produce) keeps them; on input the envelope
 * fields `"txn": ID` (a part) and `"txn": ID, "commit": true` (the marker) are the way to write them,
 * and the producer numbers the parts and counts them into the marker.
 */
import { headerMap, type Mutation } from '../envelope/envelope.js'
import type { AbortedTxn, DeadLetter } from '../log/backend.js'
import { newMutationId } from '../envelope/id.js'

import { TXN_COMMIT_HEADER, TXN_HEADER, TXN_SEQ_HEADER } from './names.js'

export * from './names.js'

/** The DLQ class and code of a transaction whose marker never came. */
export const TXN_ABORTED_CLASS = 'txn-aborted' as const
export const TXN_ABORTED_CODE = 'WAL_TXN_ABORTED'

/** Default of a namespace's txnTimeoutMs: a transaction without its marker this long after its first part is aborted. */
export const DEFAULT_TXN_TIMEOUT_MS = 300_000

/** What a record is to transactions: a part (with its sequence number), a marker (with its part count), or neither. */
export type TxnRole = { id: string; seq: number; marker?: undefined } | { id: string; marker: true; parts: number | null }

export function txnOf(m: Pick<Mutation, 'headers'>): TxnRole | undefined {
  const id = m.headers[TXN_HEADER]
  if (id === undefined) return undefined
  const commit = m.headers[TXN_COMMIT_HEADER]
  if (commit !== undefined) return { id, marker: true, parts: /^\d{1,9}$/.test(commit) ? Number(commit) : null }
  const seq = m.headers[TXN_SEQ_HEADER]
  return { id, seq: seq !== undefined && /^\d{1,9}$/.test(seq) ? Number(seq) : -1 }
}

/** A new transaction id (for `produce --txn`). */
export function newTxnId(nowMs = Date.now()): string {
  return `txn-${newMutationId(nowMs)}`
}

/** Marks a decoded mutation as part `seq` of transaction `id` (its headers are its own object). */
export function markPart(m: Mutation, id: string, seq: number): void {
  const headers = headerMap(m.headers)
  headers[TXN_HEADER] = id
  headers[TXN_SEQ_HEADER] = String(seq)
  m.headers = headers
}

/** Sets the part count of a marker. */
export function markMarker(m: Mutation, id: string, parts: number): void {
  const headers = headerMap(m.headers)
  headers[TXN_HEADER] = id
  headers[TXN_COMMIT_HEADER] = String(parts)
  m.headers = headers
}

/** A transaction's completion marker: key and payload say which transaction it closes. */
export function markerMutation(base: Mutation, id: string, parts: number): Mutation {
  const marker: Mutation = { ...base, key: id, payload: { encoding: 'json', json: JSON.stringify({ txn: id, parts }) }, target: null, notBeforeMs: null, idempotencyKey: null, attempts: 0, failures: [] }
  markMarker(marker, id, parts)
  return marker
}

/**
 * The DLQ entry of an aborted transaction at one target: a stand-in for its marker (key and payload name
 * the transaction). Replaying it writes nothing: the log refuses a marker of an aborted transaction.
 */
export function abortedTxnEntry(namespace: string, txn: AbortedTxn, timeoutMs: number, nowMs: number): DeadLetter {
  const mutation: Mutation = {
    id: newMutationId(nowMs),
    namespace,
    key: txn.id,
    payload: { encoding: 'json', json: JSON.stringify({ txn: txn.id, parts: txn.partCount, openedAt: new Date(txn.openedAtMs).toISOString() }) },
    headers: headerMap({ [TXN_HEADER]: txn.id, [TXN_COMMIT_HEADER]: '' }),
    createdAtMs: nowMs,
    notBeforeMs: null,
    target: null,
    idempotencyKey: null,
    attempts: 0,
    failures: [],
  }
  return {
    partition: txn.partition,
    mutation,
    errorClass: TXN_ABORTED_CLASS,
    code: TXN_ABORTED_CODE,
    message: `transaction ${JSON.stringify(txn.id)} had no completion marker within txnTimeoutMs (${timeoutMs} ms) of its first part (${new Date(txn.openedAtMs).toISOString()}): none of its ${txn.partCount === 0 ? '' : `${txn.partCount} `}parts is applied`,
    atMs: nowMs,
  }
}
