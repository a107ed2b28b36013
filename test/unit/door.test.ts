import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'

import { decodeEnvelope, decodeEnvelopeLine, encodeEnvelope, MAX_KEY_CHARS, type Mutation } from '../../src/lib/envelope/envelope.js'
import { invalidUtf8Offset, jsonDepth, MAX_PAYLOAD_DEPTH, scanKeyPayloadLine, scanObjectField, splitTopLevelArray } from '../../src/lib/envelope/json-text.js'
import { InvalidRecordError } from '../../src/lib/errors.js'
import { readLineChunks } from '../../src/lib/io/lines.js'
import { besideMarkerLane } from '../../src/lib/pipeline/target-consumer.js'
import { EmbeddedLog } from '../../src/lib/log/embedded/embedded-log.js'
import { DDL, PRAGMAS } from '../../src/lib/log/embedded/schema.js'
import { LogWriter, packResults, packRows, toRow, unpackResults, unpackRows, type Row, type WriteResult } from '../../src/lib/log/embedded/writer.js'
import { parseIsoTimeMs, parseStrictIsoTimeMs } from '../../src/lib/time.js'

const defaults = { namespace: 'default', nowMs: Date.UTC(2026, 0, 2, 3, 4, 5, 6) }

function rejection(line: string): InvalidRecordError {
  try {
    decodeEnvelopeLine(line, defaults)
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRecordError)
    return error as InvalidRecordError
  }
  throw new Error(`expected ${line.slice(0, 80)} to be rejected`)
}

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

describe('the JSON pre-scan', () => {
  it('finds the exact text of a field, the last one when repeated, whatever the spacing and escapes', () => {
    const line = '{"key":"a", "payload" :  {"n": 9007199254740993 ,"s":"}\\"]"}  , "x":1}'
    const span = scanObjectField(line, 'payload')!
    expect(line.slice(span.start, span.end)).toBe('{"n": 9007199254740993 ,"s":"}\\"]"}')
    const twice = '{"payload":1,"payload":[2, 3]}'
    const last = scanObjectField(twice, 'payload')!
    expect(twice.slice(last.start, last.end)).toBe('[2, 3]')
    const escaped = '{"pay\\u006coad":"x"}'
    const e = scanObjectField(escaped, 'payload')!
    expect(escaped.slice(e.start, e.end)).toBe('"x"')
    expect(scanObjectField('{"key":"payload"}', 'payload')).toBeUndefined()
  })

  it('finds the same payload and items JSON.parse does, over generated JSON with tricky strings and spacing', () => {
    let seed = 7
    const next = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
    const space = (): string => [' ', '', '\t', '\n', '\r\n  '][Math.floor(next() * 5)]!
    // As JSON text: escaped quotes and backslashes, brackets and names inside strings, escapes, astral characters.
    const strings = ['"payload"', '"a\\\\"', '"\\\\\\\\"', '"\\"payload\\":1"', '"}]{["', '"é😀"', '"\\u0070ayload"', '""', '"x\\\\\\"y"']
    const value = (depth: number): string => {
      const r = next()
      if (depth > 4 || r < 0.3) return [String(Math.floor(next() * 1e6)), '-1.5e+300', 'true', 'null', strings[Math.floor(next() * strings.length)]!][Math.floor(next() * 5)]!
      if (r < 0.65) return `[${space()}${Array.from({ length: Math.floor(next() * 4) }, () => value(depth + 1)).join(`${space()},${space()}`)}${space()}]`
      return `{${space()}${Array.from({ length: Math.floor(next() * 4) }, () => `${strings[Math.floor(next() * strings.length)]}${space()}:${space()}${value(depth + 1)}`).join(`,${space()}`)}${space()}}`
    }
    for (let i = 0; i < 2000; i++) {
      const fields = [`"key"${space()}:${space()}${strings[i % strings.length]}`, `"payload"${space()}:${space()}${value(0)}`, `"x":${value(2)}`]
      if (i % 3 === 0) fields.reverse()
      const line = `${space()}{${space()}${fields.join(`${space()},${space()}`)}${space()}}${space()}`
      const span = scanObjectField(line, 'payload')
      if (span === undefined) throw new Error(`no span in ${JSON.stringify(line)}`)
      expect(JSON.parse(line.slice(span.start, span.end)), line).toEqual((JSON.parse(line) as { payload: unknown }).payload)
      expect(line.slice(span.start, span.end)).toBe(line.slice(span.start, span.end).trim())
      const body = `[${space()}${fields.map((f) => `{${f}}`).join(`${space()},`)}${space()}]`
      expect(splitTopLevelArray(body)!.map((t) => JSON.parse(t) as unknown), body).toEqual(JSON.parse(body))
    }
  })

  it('stops at the depth limit without recursing, however deep the text', () => {
    expect(() => scanObjectField(`{"payload":${nested(100_000)}}`, 'payload')).toThrow(/nested more than 64 levels/)
    expect(jsonDepth(nested(100_000), MAX_PAYLOAD_DEPTH)).toBe(MAX_PAYLOAD_DEPTH + 1)
    expect(jsonDepth('{"a":"[[[[[[["}', 10)).toBe(1)
  })

  it('splits a JSON array body into the text of each item', () => {
    expect(splitTopLevelArray(' [ {"a":[1,2]} , 3,"x,]" ,null ] ')).toEqual(['{"a":[1,2]}', '3', '"x,]"', 'null'])
    expect(splitTopLevelArray('{"a":1}')).toBeUndefined()
  })

  it('names the first byte that is not UTF-8', () => {
    expect(invalidUtf8Offset(Buffer.from('héllo 😀'))).toBe(-1)
    expect(invalidUtf8Offset(Buffer.from([0x61, 0x62, 0xff]))).toBe(2)
    expect(invalidUtf8Offset(Buffer.from([0x61, 0xed, 0xa0, 0x80]))).toBe(1) // an encoded surrogate
    expect(invalidUtf8Offset(Buffer.from([0xc0, 0x80]))).toBe(0) // overlong
    expect(invalidUtf8Offset(Buffer.from([0xe2, 0x82]))).toBe(0) // cut short
  })
})

/** What the door makes of a line, or the message it refuses it with; the id (random) left out. */
function outcome(decode: () => Mutation): unknown {
  try {
    const { id, key, ...rest } = decode()
    return { ...rest, key: key === id ? '(the id)' : key }
  } catch (error) {
    return (error as Error).message
  }
}

/** The door's ordinary way: the pre-scan for the payload's text, JSON.parse, then the envelope's decoding. */
function parsedWay(line: string): () => Mutation {
  return () => {
    let span
    try {
      span = scanObjectField(line, 'payload')
    } catch {
      return decodeEnvelopeLine(line, defaults) // too deep: worded by the door itself
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(line)
    } catch {
      return decodeEnvelopeLine(line, defaults) // not JSON: worded by the door itself
    }
    return decodeEnvelope(parsed, defaults, span === undefined ? undefined : line.slice(span.start, span.end))
  }
}

describe('the common shape ({"key", "payload"}) at the door', () => {
  const tricky = [
    '{"key":"k","payload":{"n":9007199254740993,"z":-0,"f":1.0e+2,"s":"\\ud800 \\u00e9 \\"x\\" \\\\"}}',
    '{"payload":[1,2,3]}',
    ' \t{ "payload" : "x" , "key" : "k" } \r',
    '{"key":"a\\u0062c","payload":1}',
    '{"key":"\\ud83d\\ude00","payload":true}',
    '{"key":"\\ud800","payload":1}', // a lone surrogate in a key: refused
    '{"key":"","payload":1}',
    `{"key":"${'k'.repeat(MAX_KEY_CHARS)}","payload":1}`,
    `{"key":"${'k'.repeat(MAX_KEY_CHARS + 1)}","payload":1}`,
    '{"key":7,"payload":1}',
    '{"key":"k"}',
    '{}',
    '{"key":"k","payload":1,"key":"j"}',
    '{"payload":1,"payload":2}',
    '{"pay\\u006coad":1}',
    '{"key":"k","payload":1,"target":null}',
    '{"key":"k","payload":1,}',
    '{"key":"k","payload":01}',
    '{"key":"k","payload":[1,]}',
    '{"key":"k","payload":"a\tb"}', // a raw tab in a string
    '{"key":"k","payload":"\\x"}',
    '{"key":"k","payload":nul}',
    '{"key":"k","payload":1} x',
    '\ufeff{"payload":1}',
    `{"payload":${nested(MAX_PAYLOAD_DEPTH)}}`,
    `{"payload":${nested(MAX_PAYLOAD_DEPTH + 1)}}`,
    `{"key":"k","payload":{"a":${nested(MAX_PAYLOAD_DEPTH - 1)}}}`,
    `{"key":"k","payload":{"a":${nested(MAX_PAYLOAD_DEPTH)}}}`,
    '{"key":"k","payload":"\u2028 é 😀"}',
    '{"key":"k","payload":1e400}',
    '[{"payload":1}]',
    '{"__proto__":1,"payload":1}',
  ]

  it.each(tricky)('decodes %j as the ordinary way does, or refuses it with the same message', (line) => {
    expect(outcome(() => decodeEnvelopeLine(line, defaults))).toEqual(outcome(parsedWay(line)))
  })

  it('keeps the payload byte-exact: big integers, -0, escapes and lone surrogates as they were written', () => {
    const payload = '{"n":123456789012345678901234567890,"z":-0,"e":"\\u00e9\\ud800","w":[ 1 ,2 ]}'
    const m = decodeEnvelopeLine(`{"key":"k","payload":${payload}}`, defaults)
    expect(m.payload).toEqual({ encoding: 'json', json: payload })
  })

  it('takes only what JSON.parse reads as a key and a payload, over generated lines', () => {
    let seed = 11
    const next = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!
    const atoms = ['1', '-0', '0.5e-3', '01', '1.', '-', 'true', 'tru', 'null', '"a"', '"\\u00e9"', '"\\u00g9"', '"\\q"', '"a\\"b"', '"\\\\"', '"\t"', '""', '"}]"', '[', ']', '{', '}', ',', ':']
    const value = (depth: number): string => {
      const r = next()
      if (depth > 3 || r < 0.4) return pick(atoms)
      if (r < 0.6) return `[${Array.from({ length: Math.floor(next() * 3) }, () => value(depth + 1)).join(pick([',', ', ', ',,', ' ']))}]`
      if (r < 0.8) return `{${Array.from({ length: Math.floor(next() * 3) }, () => `${pick(['"a"', '"payload"', 'a'])}${pick([':', ' : ', ''])}${value(depth + 1)}`).join(pick([',', ' , ', '']))}}`
      return pick(atoms) + pick(atoms)
    }
    let taken = 0
    for (let i = 0; i < 5000; i++) {
      const key = pick(['"key":"k",', '"key" : "a\\"b" ,', '"key":"\\u0041",', '', '"key":1,', '"key":"k","key":"j",'])
      const line = `${pick(['', ' '])}{${key}"payload":${value(0)}${pick(['}', ' }', '', '}}', ',}'])}`
      const spans = scanKeyPayloadLine(line, MAX_PAYLOAD_DEPTH)
      if (spans === undefined) continue
      taken++
      const parsed = JSON.parse(line) as Record<string, unknown>
      expect(Object.keys(parsed).every((name) => name === 'key' || name === 'payload'), line).toBe(true)
      expect(JSON.parse(line.slice(spans.payloadStart, spans.payloadEnd)), line).toEqual(parsed.payload)
      if (spans.keyStart === -1) expect(parsed.key).toBeUndefined()
      else expect(JSON.parse(line.slice(spans.keyStart, spans.keyEnd)), line).toBe(parsed.key)
      expect(outcome(() => decodeEnvelopeLine(line, defaults)), line).toEqual(outcome(parsedWay(line)))
    }
    expect(taken).toBeGreaterThan(100)
  })
})

describe('rows crossing to the writer thread', () => {
  it('arrive as they were sent, the common ones packed and any other whole, in order', () => {
    const plain = (i: number, payload = `{"i":${i}}`): Row => [i % 3, `01ID${String(i).padStart(22, '0')}`, `k\u00e9y-${i}`, 1_700_000_000_000.123 + i, null, null, null, 0, null, payload, null, null]
    const rows: Row[] = [
      plain(0),
      [1, 'X', 'k', 5, 6, 't', 'idem', 2, '{"h":"v"}', new Uint8Array([0, 255]), '[]', null],
      plain(2, '"\\ud800 😀"'),
      [2, 'Y', 'k', 5.5, null, null, null, 0, null, '1', null, ['txn-1', 0, -1, 1000]],
      plain(4, ''),
    ]
    const packed = structuredClone(packRows(rows))
    expect(packed.others).toHaveLength(2)
    expect(unpackRows(packed)).toEqual(rows)
    const results: WriteResult[] = [
      { id: rows[0]![1], partition: 0, offset: 7, duplicate: false },
      { id: 'earlier', partition: 2, offset: 1, duplicate: true },
      { id: rows[2]![1], partition: 2, offset: 2 ** 40, duplicate: false },
      { id: 'Y', partition: 2, offset: -1, duplicate: false, refused: 'why', txnRefused: true },
      { id: rows[4]![1], partition: 1, offset: 0, duplicate: false },
    ]
    expect(unpackResults(rows, structuredClone(packResults(rows, results)))).toEqual(results)
  })
})

describe('times at the door', () => {
  it.each(['2026-02-30', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', '1', 'Tuesday 5', '2026-01-01T00:00:60Z'])('refuses %j as --at', (text) => {
    expect(parseIsoTimeMs(text)).toBeUndefined()
  })

  it('takes ISO times strictly in envelopes: date, time to the second and a zone', () => {
    expect(parseStrictIsoTimeMs('2026-12-01T09:00:00Z')).toBe(Date.parse('2026-12-01T09:00:00Z'))
    expect(parseStrictIsoTimeMs('2024-02-29T09:00:00.123456+02:00')).toBe(Date.parse('2024-02-29T07:00:00.123Z'))
    expect(parseStrictIsoTimeMs('2026-12-01')).toBeUndefined()
    expect(parseStrictIsoTimeMs('2025-02-29T00:00:00Z')).toBeUndefined()
  })

  it.each([
    ['createdAt', '"1"'],
    ['notBefore', '"Tuesday 5"'],
    ['notBefore', '9000000000000000'],
    ['createdAt', '8640000000000001'],
    ['createdAt', '1e300'],
    ['createdAt', '-1'],
    ['createdAt', '1.5'],
    ['createdAt', '"10000-01-01T00:00:00Z"'],
    ['createdAt', '"2026-02-30T00:00:00Z"'],
  ])('refuses %s %s, naming the field and the range', (field, value) => {
    const error = rejection(`{"payload":1,"${field}":${value}}`)
    expect(error.message).toMatch(new RegExp(`field "${field}": expected an ISO 8601 time .* from 1970-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z`))
  })

  it('keeps the extremes of the range and microseconds', () => {
    const m = decodeEnvelopeLine('{"payload":1,"createdAt":"9999-12-31T23:59:59.999Z","notBefore":0}', defaults)
    expect(m).toMatchObject({ createdAtMs: 253_402_300_799_999, notBeforeMs: 0 })
    expect(decodeEnvelopeLine('{"payload":1,"createdAt":"2026-01-01T00:00:00.123456Z"}', defaults).createdAtMs).toBe(Date.parse('2026-01-01T00:00:00.123Z') + 0.456)
  })
})

describe('counts, strings and headers at the door', () => {
  it.each(['1e300', '9007199254740993', '-1', '1.5', '"3"'])('refuses attempts %s', (value) => {
    expect(rejection(`{"payload":1,"attempts":${value}}`).message).toMatch(/field "attempts"/)
  })

  it('keeps header names that are object internals, in an object without a prototype', () => {
    const m = decodeEnvelopeLine('{"payload":1,"headers":{"__proto__":"x","constructor":"y","":"empty"}}', defaults)
    expect(Object.getPrototypeOf(m.headers)).toBeNull()
    expect(Object.keys(m.headers)).toEqual(['__proto__', 'constructor', ''])
    expect(encodeEnvelope(m)).toContain('"headers":{"__proto__":"x","constructor":"y","":"empty"}')
  })

  it.each([
    ['["a","b"]', /field "headers": expected an object .* found an array/],
    ['{"n":1}', /field "headers.n": expected a string header value, found number/],
    ['{"a":null}', /field "headers.a": expected a string header value, found null/],
    ['{"a":["x"]}', /found an array/],
    ['"a=b"', /found string/],
  ])('refuses headers %s instead of reshaping them', (headers, message) => {
    expect(rejection(`{"payload":1,"headers":${headers}}`).message).toMatch(message)
  })

  it('refuses keys and header values with lone surrogates, which UTF-8 storage would change', () => {
    expect(rejection('{"key":"a\\ud800","payload":1}').message).toMatch(/field "key"/)
    expect(rejection('{"payload":1,"headers":{"h":"\\udc00"}}').message).toMatch(/lone UTF-16 surrogate/)
    expect(rejection(`{"key":"${'k'.repeat(MAX_KEY_CHARS + 1)}","payload":1}`).message).toMatch(/field "key"/)
  })

  it('lets no key share the consumer\'s lane of entries held beside a transaction marker', () => {
    // A key equal to that lane would be serialised with another key's scheduled entries.
    const lane = besideMarkerLane('k')
    expect(rejection(`{"key":${JSON.stringify(lane)},"payload":1}`).message).toMatch(/field "key": expected text without lone UTF-16 surrogates/)
    expect(() => decodeEnvelope({ key: lane, payload: 1 }, { namespace: 'ns', nowMs: 0 })).toThrow(InvalidRecordError)
  })

  it('says a length limit in words with its unit: key, target and idempotency key', () => {
    expect(rejection(`{"key":"${'k'.repeat(MAX_KEY_CHARS + 1)}","payload":1}`).message).toBe('field "key": expected at most 1024 characters, found a string of 1025 characters')
    expect(rejection(`{"payload":1,"target":"${'t'.repeat(300)}"}`).message).toMatch(/^field "target": expected at most 256 characters, found/)
    expect(rejection(`{"payload":1,"idempotencyKey":"${'i'.repeat(600)}"}`).message).toMatch(/^field "idempotencyKey": expected at most 512 characters, found/)
  })

  it('keeps a failure history readable: its messages are cut whole and made well-formed, not refused', () => {
    const cutInPair = `${'m'.repeat(999)}😀 and more`
    const line = JSON.stringify({ payload: 1, failures: [{ at: '2026-01-01T00:00:00Z', target: 't', errorClass: 'retryable', message: cutInPair, attempt: 1, code: 'X\ud800' }] })
    const [failure] = decodeEnvelopeLine(line, defaults).failures
    expect(failure!.message).toHaveLength(1000)
    expect(failure!.message.endsWith('m\ufffd')).toBe(true)
    expect(failure!.code).toBe('X\ufffd')
    expect(decodeEnvelopeLine(encodeEnvelope(decodeEnvelopeLine(line, defaults)), defaults).failures).toEqual([failure])
  })

  it('refuses a line nested too deep before parsing it, and names where', () => {
    const error = rejection(`{"payload":${nested(10_000)}}`)
    expect(error).toMatchObject({ code: 'WAL_RECORD_TOO_DEEP' })
    expect(error.message).toMatch(/nested more than 64 levels deep .* at character 76/)
    expect(decodeEnvelopeLine(`{"payload":${nested(64)}}`, defaults).payload).toEqual({ encoding: 'json', json: nested(64) })
  })

  it('keeps a payload as the exact text received: big and precise numbers, spacing, escapes, every plane', () => {
    const payload = '{ "big": 9007199254740993, "huge":1e400,"long":123456789012345678901234567890,\t"s":"\\u00e9 é 𝄞 \\ud83d\\ude00 \u{10FFFD}" , "z" : [ ] }'
    const m = decodeEnvelopeLine(`{"key":"k","payload":${payload}}`, defaults)
    expect(m.payload).toEqual({ encoding: 'json', json: payload })
    const copy = decodeEnvelopeLine(encodeEnvelope(m), defaults)
    expect(copy.payload).toEqual({ encoding: 'json', json: payload })
  })

  it('words a line that is not JSON without echoing control characters, and names a byte order mark', () => {
    expect(rejection('{"payload":1,\u0000}').message).not.toContain('\u0000')
    expect(rejection('\ufeff{"payload":1}').message).toMatch(/byte order mark/)
  })
})

describe('the embedded log refusing a row', () => {
  it('rejects that row only and commits the others of its transaction', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wal-door-'))
    try {
      const db = new DatabaseSync(join(dir, 'x.db'))
      for (const pragma of PRAGMAS) db.exec(pragma)
      db.exec(DDL)
      db.prepare('INSERT INTO partitions (partition, next_offset) VALUES (0, 0)').run()
      const good = decodeEnvelopeLine('{"key":"a","payload":1}', defaults)
      // What the door keeps out, handed to the writer directly: SQLite refuses a REAL in an INTEGER column.
      const bad = { ...good, id: '01M80K6XFDG62PY7DFWNXXTEAB', createdAtMs: 1e300 }
      const results = new LogWriter(db).commit([toRow(good, 1), toRow(bad, 1), toRow({ ...good, id: '01M80K6XFDG62PY7DFWNXXTEAC' }, 1)])
      expect(results.map((r) => [r.offset, r.refused === undefined])).toEqual([[0, true], [-1, false], [1, true]])
      expect(db.prepare('SELECT count(*) AS n FROM records').get()).toEqual({ n: 2 })
      db.close()

      const log = EmbeddedLog.open({ stateDir: dir, namespace: 'ns', partitions: 1, create: true, writerThread: false })
      const appended = await log.append([good, bad], { perEntryErrors: true })
      expect(appended[0]).toMatchObject({ offset: 0, duplicate: false })
      expect(appended[1]!.error).toBeInstanceOf(InvalidRecordError)
      expect(appended[1]!.error).toMatchObject({ code: 'WAL_RECORD_REFUSED' })
      await expect(log.append([bad])).rejects.toBeInstanceOf(InvalidRecordError)
      await log.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('reading NDJSON lines from a stream', () => {
  async function read(chunks: Buffer[], maxLineBytes?: number): Promise<Array<{ line: string; lineNumber: number; invalid?: string }>> {
    const out: Array<{ line: string; lineNumber: number; invalid?: string }> = []
    for await (const lines of readLineChunks(Readable.from(chunks), maxLineBytes)) out.push(...lines)
    return out
  }
  const input = Buffer.concat([
    Buffer.from('\ufeff{"a":"é😀"}\r\n\n  \n{"b":"'),
    Buffer.from([0xff]),
    Buffer.from('"}\n{"c":"𝄞"}'),
  ])

  it('gives the same lines however the input is cut, numbering blank lines and naming bytes that are not UTF-8', async () => {
    const whole = await read([input])
    expect(whole).toEqual([
      { line: '{"a":"é😀"}', lineNumber: 1 },
      { line: '', lineNumber: 4, invalid: expect.stringMatching(/not valid UTF-8 \(byte 7 of the line, 0xff\)/) },
      { line: '{"c":"𝄞"}', lineNumber: 5 },
    ])
    for (const size of [1, 2, 3, 5, 7]) {
      const chunks: Buffer[] = []
      for (let at = 0; at < input.length; at += size) chunks.push(input.subarray(at, at + size))
      expect(await read(chunks), `chunks of ${size}`).toEqual(whole)
    }
  })

  it('refuses a line over the limit without holding it, and goes on after it', async () => {
    const lines = await read([Buffer.from('{"a":1}\n'), Buffer.from('x'.repeat(40)), Buffer.from('x'.repeat(40)), Buffer.from('\n{"b":2}\n')], 64)
    expect(lines).toEqual([
      { line: '{"a":1}', lineNumber: 1 },
      { line: '', lineNumber: 2, invalid: 'the line is longer than 64 bytes' },
      { line: '{"b":2}', lineNumber: 3 },
    ])
  })
})
