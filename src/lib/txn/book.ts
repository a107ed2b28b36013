/**
 * What `wal produce` knows of the transactions in its input: it numbers each transaction's parts in
 * input order, counts them into the marker, and refuses a marker whose parts did not all get written
 * (a rejected line that named the transaction, or one that could not be read at all). A transaction's
 * parts and marker come in one run; a marker for parts this run did not see is refused.
 */
import type { Mutation } from '../envelope/envelope.js'
import { InvalidRecordError } from '../errors.js'
import { markMarker, markPart, txnOf } from './txn.js'

/** One transaction of this run, with the entries (input lines) of its parts. */
export interface OpenTxn<E> {
  id: string
  namespace: string
  parts: E[]
  /** Why its marker may not be written (a part was rejected). */
  spoiled?: string
}

export class TxnBook<E> {
  private readonly open = new Map<string, OpenTxn<E>>()
  private readonly closed = new Set<string>()

  /** With `wrapId` (`produce --txn`), every line is a part of that one transaction. */
  constructor(private readonly wrapId?: string) {}

  /**
   * Takes a decoded line: numbers a part, or counts a marker's parts into it (returning its transaction,
   * whose parts must be durable before the marker is written). Throws InvalidRecordError for a line
   * that cannot belong (a marker without its parts, a part after the marker).
   */
  admit(mutation: Mutation, entry: E): OpenTxn<E> | undefined {
    let role = txnOf(mutation)
    if (this.wrapId !== undefined) {
      if (role !== undefined) throw new InvalidRecordError('the parts of this transaction (--txn, or a transactions request) cannot name a transaction of their own ("txn")', { code: 'WAL_TXN_REFUSED' })
      role = { id: this.wrapId, seq: 0 }
    }
    if (role === undefined) return undefined
    const name = `transaction ${JSON.stringify(role.id)}`
    if (this.closed.has(role.id)) throw new InvalidRecordError(`${name} was closed by its marker earlier in this input`, { code: 'WAL_TXN_REFUSED', suggestions: ['give each transaction its own id'] })
    const txn = this.open.get(role.id)
    if (role.marker) {
      if (txn === undefined) {
        throw new InvalidRecordError(`${name} has no parts earlier in this input: a marker follows its parts in the same input`, {
          code: 'WAL_TXN_REFUSED',
          suggestions: ['write the parts ({"txn": ID, "key": …, "payload": …}) and then the marker in one produce run'],
        })
      }
      this.open.delete(role.id)
      this.closed.add(role.id)
      if (txn.spoiled !== undefined) throw this.refusal(txn)
      markMarker(mutation, role.id, txn.parts.length)
      return txn
    }
    if (mutation.notBeforeMs !== null) {
      throw new InvalidRecordError(`${name}: a part is applied when its transaction's marker is read, so it cannot be delayed (notBefore, --delay, --at, --jitter)`, { code: 'WAL_TXN_REFUSED' })
    }
    if (txn !== undefined && txn.namespace !== '' && txn.namespace !== mutation.namespace) {
      throw new InvalidRecordError(`${name} is in namespace "${txn.namespace}": all its parts go to one namespace`, { code: 'WAL_TXN_REFUSED' })
    }
    const open = txn ?? { id: role.id, namespace: mutation.namespace, parts: [] }
    open.namespace ||= mutation.namespace
    this.open.set(role.id, open)
    markPart(mutation, role.id, open.parts.length)
    open.parts.push(entry)
    return undefined
  }

  /** A rejected line: spoils the transaction it names, or every open one when it cannot be read. */
  rejected(line: string, lineNumber: number): void {
    if (this.wrapId !== undefined) return this.spoil(this.wrapId, lineNumber)
    const named = /"txn"\s*:\s*"([^"\\]{1,128})"/.exec(line)?.[1]
    if (named !== undefined) return this.spoil(named, lineNumber)
    for (const id of this.open.keys()) this.spoil(id, lineNumber)
  }

  /** A part that was not written (refused by the log): its transaction's marker is refused. */
  spoil(id: string, lineNumber: number): void {
    if (this.closed.has(id)) return
    const txn = this.open.get(id) ?? { id, namespace: '', parts: [] }
    txn.spoiled ??= `line ${lineNumber} was rejected`
    this.open.set(id, txn)
  }

  refusal(txn: OpenTxn<E>): InvalidRecordError {
    return new InvalidRecordError(`transaction ${JSON.stringify(txn.id)} is not committed: ${txn.spoiled}, so its marker is not written; its parts are never applied (aborted after txnTimeoutMs)`, {
      code: 'WAL_TXN_REFUSED',
      suggestions: ['fix the rejected line and produce the whole transaction again under a new id'],
    })
  }

  /** Transactions with no marker at the end of the input. */
  unclosed(): OpenTxn<E>[] {
    return [...this.open.values()]
  }

  /** `--txn`: counts the parts of the wrapping transaction into its marker. */
  admitMarker(marker: Mutation, txn: OpenTxn<E>): void {
    markMarker(marker, txn.id, txn.parts.length)
  }

  /** `--txn`: the transaction that wraps the input, closed at its end. */
  take(id: string): OpenTxn<E> | undefined {
    const txn = this.open.get(id)
    this.open.delete(id)
    if (txn !== undefined) this.closed.add(id)
    return txn
  }
}
