import { describe, expect, it } from 'vitest'

import {
  decodeEnvelope,
  decodeEnvelopeLine,
  decodeFailures,
  encodeEnvelope,
  failuresToJson,
  MAX_FAILURES,
  type LogRecord,
} from '../../src/lib/envelope/envelope.js'
import { newMutationId, ULID_PATTERN } from '../../src/lib/envelope/id.js'
import { InvalidRecordError } from '../../src/lib/errors.js'

const defaults = { namespace: 'default', nowMs: Date.UTC(2026, 0, 2, 3, 4, 5, 6) }

function rejects(input: unknown): string {
  try {
    decodeEnvelope(input, defaults)
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRecordError)
    return (error as Error).message
  }
  throw new Error('expected a rejection')
}

describe('decoding an envelope', () => {
  it('accepts the smallest line and fills in id, key, createdAt and defaults', () => {
    const m = decodeEnvelopeLine('{"payload":{"a":1}}', defaults)
    expect(m.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/)
    expect(m).toMatchObject({
      namespace: 'default',
      key: m.id,
      payload: { encoding: 'json', json: '{"a":1}' },
      headers: {},
      createdAtMs: defaults.nowMs,
      notBeforeMs: null,
      target: null,
      idempotencyKey: null,
      attempts: 0,
      failures: [],
    })
  })

  it('keeps given fields, and lets the line win over defaults', () => {
    const m = decodeEnvelope(
      {
        v: 1,
        id: '01M80K6XFDG62PY7DFWNXXTEAH',
        namespace: 'orders',
        key: 'k',
        payload: 'hi',
        headers: { a: '1' },
        createdAt: '2020-01-01T00:00:00.000Z',
        notBefore: 3_000_000_000_000,
        target: 'eu',
        idempotencyKey: 'i',
        attempts: 2,
      },
      { ...defaults, headers: { a: 'flag', b: 'flag' }, notBefore: () => 5, target: 'us' },
    )
    expect(m).toMatchObject({
      id: '01M80K6XFDG62PY7DFWNXXTEAH',
      namespace: 'orders',
      headers: { a: '1', b: 'flag' },
      createdAtMs: Date.UTC(2020, 0, 1),
      notBeforeMs: 3_000_000_000_000,
      target: 'eu',
      attempts: 2,
    })
  })

  it('uses the forced namespace over the line (produce -n)', () => {
    expect(decodeEnvelope({ namespace: 'a', payload: 1 }, { ...defaults, namespace: 'b', forceNamespace: true }).namespace).toBe('b')
  })

  it('decodes base64 payloads to bytes', () => {
    const m = decodeEnvelope({ payload: 'AAH//g==', payloadEncoding: 'base64' }, defaults)
    expect(m.payload).toEqual({ encoding: 'base64', bytes: Buffer.from([0, 1, 255, 254]) })
  })

  it.each([
    [{ kye: 'x', payload: 1 }, /unknown field "kye" \(known fields: v, id, namespace, key, payload/],
    [{ key: 'x' }, /field "payload" is missing/],
    [{ key: '', payload: 1 }, /field "key": expected a non-empty key/],
    [{ key: 5, payload: 1 }, /field "key": expected string, found 5/],
    [{ v: 2, payload: 1 }, /field "v": expected envelope version 1/],
    [{ id: 'not-a-ulid', payload: 1 }, /field "id": expected a 26-character ULID/],
    [{ payload: 1, headers: { h: 1 } }, /field "headers.h": expected a string header value/],
    [{ payload: 1, createdAt: 'yesterday' }, /field "createdAt": expected an ISO 8601 time/],
    [{ payload: 1, payloadEncoding: 'hex' }, /field "payloadEncoding"/],
    [{ payload: '%%%', payloadEncoding: 'base64' }, /not valid base64/],
    [{ payload: { a: 1 }, payloadEncoding: 'base64' }, /payload must be a base64 string/],
    [{ payload: 1, failures: [{ at: 1, target: 't', errorClass: 'weird', message: 'm', attempt: 1 }] }, /field "failures.0.errorClass"/],
    [[1, 2], /expected a JSON object \(an envelope\), found an array/],
    ['text', /expected a JSON object/],
  ])('rejects %j with a message naming the field', (input, message) => {
    expect(rejects(input)).toMatch(message)
  })

  it('reports malformed JSON with its own code', () => {
    try {
      decodeEnvelopeLine('{"payload":', defaults)
      throw new Error('expected a rejection')
    } catch (error) {
      expect((error as InvalidRecordError).code).toBe('WAL_RECORD_MALFORMED')
    }
  })

  it(`keeps only the last ${MAX_FAILURES} failures`, () => {
    const failures = Array.from({ length: 15 }, (_, i) => ({ at: i, target: 't', errorClass: 'retryable', message: `m${i}`, attempt: i + 1 }))
    const m = decodeEnvelope({ payload: 1, failures }, defaults)
    expect(m.failures).toHaveLength(MAX_FAILURES)
    expect(m.failures[0]!.message).toBe('m5')
  })
})

describe('encoding an envelope', () => {
  it('round-trips through decode, including bytes, failures and position', () => {
    const record: LogRecord = {
      id: '01M80K6XFDG62PY7DFWNXXTEAH',
      namespace: 'ns',
      key: 'ключ',
      payload: { encoding: 'base64', bytes: new Uint8Array([0, 10, 13, 255]) },
      headers: { 'content-type': 'x/y', quote: '"' },
      createdAtMs: 1_700_000_000_123,
      notBeforeMs: 1_800_000_000_000,
      target: 'eu',
      idempotencyKey: 'idem',
      attempts: 3,
      failures: [{ atMs: 1_700_000_001_000, target: 'eu', errorClass: 'fatal', message: 'bad "row"', attempt: 3, code: 'E400' }],
      partition: 2,
      offset: 9,
      appendedAtMs: 1_700_000_000_200,
    }
    const line = encodeEnvelope(record)
    const parsed = JSON.parse(line) as Record<string, unknown>
    expect(parsed).toMatchObject({ v: 1, payload: 'AAoN/w==', payloadEncoding: 'base64', partition: 2, offset: 9, appendedAt: '2023-11-14T22:13:20.200Z' })
    const { partition: _p, offset: _o, appendedAtMs: _a, ...mutation } = record
    expect(decodeEnvelopeLine(line, defaults)).toEqual({ ...mutation, payload: { encoding: 'base64', bytes: Buffer.from([0, 10, 13, 255]) } })
  })

  it('keeps JSON payload text as it was serialized', () => {
    const m = decodeEnvelopeLine('{"payload":{"b":[1,2,{"c":null}],"s":"\\u00e9"}}', defaults)
    expect(JSON.parse(encodeEnvelope(m)).payload).toEqual({ b: [1, 2, { c: null }], s: 'é' })
  })

  it('stores failures compactly and reads them back', () => {
    expect(failuresToJson([])).toBeNull()
    const failures = [{ atMs: 5, target: 't', errorClass: 'retryable' as const, message: 'm', attempt: 1 }]
    expect(decodeFailures(failuresToJson(failures))).toEqual(failures)
  })
})

describe('mutation ids', () => {
  const timeOf = (id: string): number => [...id.slice(0, 10)].reduce((ms, c) => ms * 32 + '0123456789ABCDEFGHJKMNPQRSTVWXYZ'.indexOf(c), 0)

  it('are ULIDs that carry their time and sort in the order they were made, even within one millisecond or when the clock steps back', () => {
    const ids = [newMutationId(3_000_000_000_000)]
    for (let i = 0; i < 10_000; i++) ids.push(newMutationId(3_000_000_000_000 + Math.floor(i / 100)))
    ids.push(newMutationId(2_900_000_000_000)) // the clock stepped back: still after the last one
    for (const id of ids) expect(id).toMatch(ULID_PATTERN)
    expect(new Set(ids).size).toBe(ids.length)
    expect([...ids].sort()).toEqual(ids)
    expect(timeOf(ids[0]!)).toBe(3_000_000_000_000)
    expect(timeOf(ids[5_000]!)).toBe(3_000_000_000_049)
    expect(timeOf(ids.at(-1)!)).toBe(3_000_000_000_099)
  })

  it('draw fresh random bits in each new millisecond, and refuse a time a ULID cannot hold', () => {
    const a = newMutationId(4_000_000_000_000)
    const b = newMutationId(4_000_000_000_001)
    expect(a.slice(10)).not.toBe(b.slice(10))
    expect(timeOf(newMutationId(2 ** 48 - 1))).toBe(2 ** 48 - 1)
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 48]) expect(() => newMutationId(bad)).toThrow(RangeError)
  })
})
