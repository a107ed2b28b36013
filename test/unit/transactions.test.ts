import { describe, expect, it } from 'vitest'

import { decodeEnvelopeLine, type Mutation } from '../../src/lib/envelope/envelope.js'
import { InvalidRecordError } from '../../src/lib/errors.js'
import { TxnBook } from '../../src/lib/txn/book.js'
import { txnOf } from '../../src/lib/txn/txn.js'

const defaults = { namespace: 'ns', nowMs: Date.parse('2026-12-01T00:00:00Z') }
const decode = (line: string): Mutation => decodeEnvelopeLine(line, defaults)

describe('transactions at the envelope door', () => {
  it('makes "txn" a part and {"txn", "commit": true} its marker (key = the id, no payload needed)', () => {
    const part = decode('{"txn":"order-7","key":"k1","payload":{"op":"put"}}')
    expect(txnOf(part)).toEqual({ id: 'order-7', seq: -1 })
    expect(part.payload).toEqual({ encoding: 'json', json: '{"op":"put"}' })
    const marker = decode('{"txn":"order-7","commit":true}')
    expect(txnOf(marker)).toEqual({ id: 'order-7', marker: true, parts: null })
    expect(marker.key).toBe('order-7')
  })

  it('refuses a marker without an id, an id that is not one, commit other than true, and a part without payload', () => {
    for (const [line, message] of [
      ['{"commit":true}', /field "commit": a marker names its transaction/],
      ['{"txn":"a b","key":"k","payload":1}', /field "txn".*a transaction id/],
      ['{"txn":"\\u0007x","commit":true}', /field "txn"/],
      ['{"txn":"t","commit":false}', /field "commit"/],
      ['{"txn":"t","key":"k"}', /field "payload" is missing/],
    ] as const) {
      expect(() => decode(line), line).toThrow(InvalidRecordError)
      expect(() => decode(line), line).toThrow(message)
    }
  })
})

describe("produce's book of transactions", () => {
  it('numbers parts in input order and counts them into the marker', () => {
    const book = new TxnBook<number>()
    const parts = [0, 1, 2].map((i) => decode(`{"txn":"t","key":"k${i}","payload":${i}}`))
    parts.forEach((p, i) => expect(book.admit(p, i)).toBeUndefined())
    expect(parts.map((p) => txnOf(p))).toEqual([0, 1, 2].map((seq) => ({ id: 't', seq })))
    const marker = decode('{"txn":"t","commit":true}')
    expect(book.admit(marker, 3)?.parts).toEqual([0, 1, 2])
    expect(txnOf(marker)).toEqual({ id: 't', marker: true, parts: 3 })
    // Closed: nothing more of it in this input.
    expect(() => book.admit(decode('{"txn":"t","key":"k","payload":1}'), 4)).toThrow(/closed by its marker/)
    expect(book.unclosed()).toEqual([])
  })

  it('refuses the marker of a transaction that lost a line, and one whose parts it never saw', () => {
    const book = new TxnBook<number>()
    book.admit(decode('{"txn":"a","key":"k","payload":1}'), 0)
    book.admit(decode('{"txn":"b","key":"k","payload":1}'), 1)
    book.rejected('{"txn":"a","key":"k","payload":1,"createdAt":"never"}', 3)
    expect(() => book.admit(decode('{"txn":"a","commit":true}'), 4)).toThrow(/transaction "a" is not committed: line 3 was rejected/)
    // A line that cannot be read may have belonged to any open transaction.
    book.rejected('{"txn": not json', 5)
    expect(() => book.admit(decode('{"txn":"b","commit":true}'), 6)).toThrow(/line 5 was rejected/)
    expect(() => book.admit(decode('{"txn":"c","commit":true}'), 7)).toThrow(/has no parts earlier in this input/)
  })

  it('refuses a delayed part: parts are applied when the marker is read', () => {
    const book = new TxnBook<number>()
    expect(() => book.admit(decode('{"txn":"t","key":"k","payload":1,"notBefore":"2030-01-01T00:00:00Z"}'), 0)).toThrow(/cannot be delayed/)
  })

  it('with --txn, makes every line a part of one transaction and refuses lines that name their own', () => {
    const book = new TxnBook<number>('txn-1')
    const part = decode('{"key":"k","payload":1}')
    book.admit(part, 0)
    expect(txnOf(part)).toEqual({ id: 'txn-1', seq: 0 })
    expect(() => book.admit(decode('{"txn":"x","key":"k","payload":1}'), 1)).toThrow(/cannot name a transaction of their own/)
    expect(book.take('txn-1')?.parts).toEqual([0])
  })
})
