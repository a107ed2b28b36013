import type { Message } from '@aws-sdk/client-sqs'
import { describe, expect, it } from 'vitest'

import { decodeEnvelopeLine, encodePoisonRecord } from '../../src/lib/envelope/envelope.js'
import { isJsonWithin } from '../../src/lib/envelope/json-text.js'
import { decodeRecord, encodeRecord, type IncomingRecord } from '../../src/lib/log/kafka/record-codec.js'
import { decodeMessage, encodeMessage } from '../../src/lib/log/sqs/codec.js'

const defaults = { namespace: 'orders', nowMs: Date.parse('2026-11-22T00:00:00Z') }
const ID = '01M80K6XFDG62PY7DFWNXXTEAH'

function kafkaRecord(value: Buffer | string, headers: Record<string, string>, key = 'k'): IncomingRecord {
  return {
    key: Buffer.from(key),
    value: Buffer.from(value),
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v)])),
    timestamp: String(defaults.nowMs),
    offset: '41',
  }
}

describe('reading a Kafka record that cannot be decoded', () => {
  it.each([
    ['a value that is not JSON (a header-copying replicator)', 'not json at all', {}, /not JSON/],
    ['a value that is not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), {}, /not valid UTF-8/],
    ['a payload nested beyond the limit', '['.repeat(5000) + ']'.repeat(5000), {}, /nested more than 64/],
    ['a notBefore past 9999', '1', { 'wal-not-before': '9000000000000000' }, /wal-not-before/],
    ['attempts that are not a count', '1', { 'wal-attempts': '1e300' }, /wal-attempts/],
    ['failures that are not JSON', '1', { 'wal-failures': '[{' }, /failures/],
    ['an id that is not a ULID', '1', { 'wal-id': 'not-an-id' }, /wal-id "not-an-id" is not a ULID/],
  ] as Array<[string, Buffer | string, Record<string, string>, RegExp]>)('quarantines %s instead of handing it on', (_what, value, headers, reason) => {
    const record = decodeRecord(kafkaRecord(value, { 'wal-id': ID, source: 'crm', ...headers }), 'orders', 3, 'orders')
    expect(record.poison?.error).toMatch(reason)
    expect(record.poison?.error).toMatch(/at 3:41 of topic orders/)
    expect(record).toMatchObject({ key: 'k', partition: 3, offset: 41, payload: { encoding: 'base64', bytes: Buffer.from(value) } })
    expect(record.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/)
    // tail --json prints it as one valid JSON line that produce refuses (no payload), with the raw bytes.
    const line = JSON.parse(encodePoisonRecord(record)) as { raw: string; error: string }
    expect(Buffer.from(line.raw, 'base64')).toEqual(Buffer.from(value))
    expect(() => decodeEnvelopeLine(encodePoisonRecord(record), defaults)).toThrow(/payload/)
  })

  it('still reads a good record, and keeps header names such as __proto__', () => {
    const mutation = decodeEnvelopeLine('{"key":"k","payload":{"n":9007199254740993},"headers":{"__proto__":"x"}}', defaults)
    const out = encodeRecord(mutation)
    const back = decodeRecord(kafkaRecord(out.value as string, out.headers), 'orders', 0, 'orders')
    expect(back.poison).toBeUndefined()
    expect(back.payload).toEqual({ encoding: 'json', json: '{"n":9007199254740993}' })
    expect(Object.keys(back.headers)).toEqual(['__proto__'])
  })
})

describe('reading an SQS message that cannot be decoded', () => {
  const source = { queue: 'orders', shard: 2, namespace: 'orders' }
  const message = (body: string, attributes: Message['MessageAttributes']): Message => ({
    MessageId: 'm-1',
    ReceiptHandle: 'r',
    Body: body,
    MessageAttributes: attributes,
    Attributes: { SentTimestamp: String(defaults.nowMs) },
  })

  it('quarantines a body marked as wal envelope that is not one', () => {
    const record = decodeMessage(message('{"v":1,"payload":1,"createdAt":1e300}', { 'wal-envelope': { DataType: 'String', StringValue: '1' }, 'wal-id': { DataType: 'String', StringValue: ID } }), source)
    expect(record.poison?.error).toMatch(/cannot decode message m-1 of queue orders as a wal envelope: field "createdAt"/)
    expect(record).toMatchObject({ id: ID, partition: 2, payload: { encoding: 'base64' } })
  })

  it('quarantines a body shaped as an envelope but sent without attributes, and wraps a look-alike without id and payload', () => {
    const copied = decodeMessage(message(`{"v":1,"id":"${ID}","key":"k","payload":1,"createdAt":"1"}`, {}), source)
    expect(copied.poison?.error).toMatch(/field "createdAt"/)
    const lookAlike = decodeMessage(message('{"v":1,"data":[1,2]}', {}), source)
    expect(lookAlike.poison).toBeUndefined()
    expect(lookAlike.payload).toEqual({ encoding: 'json', json: '{"v":1,"data":[1,2]}' })
  })

  it('keeps the exact payload text of a good envelope, and wraps a foreign body that is not JSON as bytes', () => {
    const mutation = decodeEnvelopeLine('{"key":"k","payload":{"n":123456789012345678901234567890}}', defaults)
    const out = encodeMessage(mutation, { fifo: false })
    const back = decodeMessage(message(out.MessageBody, out.MessageAttributes), source)
    expect(back.poison).toBeUndefined()
    expect(back.payload).toEqual({ encoding: 'json', json: '{"n":123456789012345678901234567890}' })
    const foreign = decodeMessage(message('plain text', {}), source)
    expect(foreign).toMatchObject({ payload: { encoding: 'base64' } })
    expect(foreign.poison).toBeUndefined()
  })
})

describe('the one-pass JSON check of stored payloads', () => {
  const parses = (text: string): boolean => {
    try {
      JSON.parse(text)
      return true
    } catch {
      return false
    }
  }

  it('accepts exactly what JSON.parse accepts, for hand-picked edge cases', () => {
    const texts = [
      '0', '-0', '1', '-', '01', '1.', '.5', '1.5', '1e5', '1E+5', '1e-5', '1e', '1e+', '-1.5e-10', '+1', '0x10', 'NaN', 'Infinity',
      'true', 'false', 'null', 'tru', 'nul', 'True', 'truex', 'true false',
      '""', '"a"', '"\\u00e9"', '"\\u00g9"', '"\\u00e"', '"\\x41"', '"\\/"', '"\\b\\f\\n\\r\\t\\"\\\\"', '"\\a"', '"\t"', '"\n"', '"\u001f"', '"\u007f"', '"\ud800"', '"a', 'a"',
      '{}', '[]', '{ }', '[ ]', ' \t\r\n{}\n ', '\u00a0{}', '\ufeff{}', '{"a":1}', '{"a":1,}', '{,"a":1}', '{"a" 1}', '{"a":}', '{a:1}', "{'a':1}", '{"a":1 "b":2}',
      '[1,2,3]', '[1,]', '[,1]', '[1 2]', '[[[]]]', '[[[]]', '[]]', '{"a":[{"b":{"c":[null,true,false,"x",-0.5e3]}}]}', '{"a":1}{"b":2}', '{"a":1} x', '', ' ', '/* */ 1', '1 // x',
    ]
    for (const text of texts) expect(isJsonWithin(text, 1000), JSON.stringify(text)).toBe(parses(text))
  })

  it('accepts exactly what JSON.parse accepts, for thousands of random near-JSON texts', () => {
    const pieces = ['{', '}', '[', ']', ',', ':', '"', '"a"', '"k":', '1', '-', '0', '.', 'e', '+', 'true', 'null', 'fals', ' ', '\n', '\\', '\\u00', 'x', '\u0001', '9']
    let seed = 42
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed % n
    }
    let agreed = 0
    for (let i = 0; i < 20_000; i++) {
      let text = ''
      const length = 1 + random(12)
      for (let k = 0; k < length; k++) text += pieces[random(pieces.length)]
      expect(isJsonWithin(text, 1000), JSON.stringify(text)).toBe(parses(text))
      agreed++
    }
    // And valid documents, lightly damaged at one character.
    const doc = JSON.stringify({ a: [1, -2.5e-3, 'x"y\\z\u0001', { b: null, c: true, d: false, e: {} }], f: '\ud83d\ude00' })
    for (let at = 0; at < doc.length; at++) {
      for (const replacement of ['', ' ', '"', '}', ']', ',', '1', 'x']) {
        const text = doc.slice(0, at) + replacement + doc.slice(at + 1)
        expect(isJsonWithin(text, 1000), JSON.stringify(text)).toBe(parses(text))
      }
    }
    expect(agreed).toBe(20_000)
  })

  it('refuses JSON nested deeper than the limit, and accepts it at the limit, as jsonDepth counts', () => {
    const nested = (n: number): string => '['.repeat(n) + ']'.repeat(n)
    expect(isJsonWithin(nested(64), 64)).toBe(true)
    expect(isJsonWithin(nested(65), 64)).toBe(false)
    expect(isJsonWithin(`{"a":${nested(63)}}`, 64)).toBe(true)
    expect(isJsonWithin(`{"a":${nested(64)}}`, 64)).toBe(false)
    expect(isJsonWithin(nested(100_000), 64)).toBe(false)
    expect(isJsonWithin('"' + '['.repeat(1000) + '"', 64)).toBe(true)
  })
})
