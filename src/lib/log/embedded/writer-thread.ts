/**
 * The embedded log's writer thread. While it runs a transaction (and waits for fsync), the main thread
 * goes on parsing and validating the next batch, so a long `produce` from stdin uses both cores.
 * Messages are handled strictly in order; after a failed commit every later one is refused, so nothing
 * is written after a gap and per-key order holds.
 */
import { DatabaseSync } from 'node:sqlite'
import { parentPort, workerData } from 'node:worker_threads'

import { PRAGMAS } from './schema.js'
import { LogWriter, packResults, unpackRows, type PackedResults, type PackedRows } from './writer.js'

export type WriterRequest = { seq: number; rows: PackedRows } | { close: true }

/** What crosses back from the thread when a commit fails (an Error does not survive postMessage whole). */
export interface WriterFailure {
  message: string
  errcode?: number
  code?: string
}

export type WriterReply = { seq: number; results: PackedResults } | { seq: number; error: WriterFailure }

const { path, lockTimeoutMs } = workerData as { path: string; lockTimeoutMs: number }
let db: DatabaseSync | undefined
let writer: LogWriter | undefined
let failure: WriterFailure | undefined

parentPort!.on('message', (request: WriterRequest) => {
  if ('close' in request) {
    db?.close()
    parentPort!.close()
    return
  }
  const { seq, rows } = request
  if (failure) {
    parentPort!.postMessage({ seq, error: failure } satisfies WriterReply)
    return
  }
  try {
    if (!writer) {
      db = new DatabaseSync(path, { timeout: lockTimeoutMs })
      for (const pragma of PRAGMAS) db.exec(pragma)
      writer = new LogWriter(db)
    }
    const unpacked = unpackRows(rows)
    const results = packResults(unpacked, writer.commit(unpacked))
    parentPort!.postMessage({ seq, results } satisfies WriterReply, [results.offsets.buffer])
  } catch (error) {
    const e = error as Error & { errcode?: number; code?: string }
    failure = { message: e.message, errcode: e.errcode, code: e.code }
    parentPort!.postMessage({ seq, error: failure } satisfies WriterReply)
  }
})
