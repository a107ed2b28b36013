import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { scanObjectField } from '../../src/lib/envelope/json-text.js'
import { corpusInput, hostileCorpus, TRICKY_PAYLOADS } from '../helpers/hostile-corpus.js'
import { jsonLines, makeSandbox, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => {
  wal.cleanup()
})

/** The exact payload text of each line of `tail --json`, by key. */
function payloadsByKey(stdout: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of stdout.split('\n')) {
    if (line === '') continue
    const { key } = JSON.parse(line) as { key: string }
    const span = scanObjectField(line, 'payload')!
    out.set(key, line.slice(span.start, span.end))
  }
  return out
}

const STACK_TRACE = /\n\s+at .+\(.*:\d+:\d+\)|Maximum call stack|RangeError|TypeError/

describe('a hostile NDJSON corpus on stdin', () => {
  it('rejects every bad line by number with why, acks every good one, and reads them back byte-exact (exit 4)', async () => {
    const lines = hostileCorpus(1000)
    const { input, numbered } = corpusInput(lines)
    expect(numbered.filter((l) => l.kind !== undefined).length).toBeGreaterThanOrEqual(1000)
    const result = await wal.run(['produce', '--json'], { input })
    expect(result.stderr).not.toMatch(STACK_TRACE)
    expect(result.code).toBe(4)
    const answers = new Map(jsonLines<{ line: number; durable: boolean; id?: string; error?: { code: string; message: string } }>(result.stdout).map((a) => [a.line, a]))
    for (const line of numbered) {
      const answer = answers.get(line.lineNumber)
      if (line.good) expect(answer, `line ${line.lineNumber} (good)`).toMatchObject({ durable: true })
      else if (line.kind) {
        expect(answer, `line ${line.lineNumber} (${line.kind})`).toMatchObject({ durable: false })
        expect(answer!.error!.message.length, `line ${line.lineNumber} (${line.kind})`).toBeGreaterThan(10)
        // eslint-disable-next-line no-control-regex
        expect(answer!.error!.message).not.toMatch(/[\u0000-\u0008\u000b-\u001f]/)
      } else expect(answer, `line ${line.lineNumber} (blank)`).toBeUndefined()
    }
    const bad = numbered.filter((l) => l.kind !== undefined).length
    const good = numbered.filter((l) => l.good).length
    expect(JSON.parse(result.stderr)).toMatchObject({ error: { code: 'WAL_INPUT_REJECTED', exitCode: 4, details: { rejected: bad, durable: good } } })

    const tail = await wal.run(['tail', '--json'])
    expect(tail.code).toBe(0)
    const stored = payloadsByKey(tail.stdout)
    expect(stored.size).toBe(good)
    for (const line of numbered) if (line.good) expect(stored.get(line.good.key), line.good.key).toBe(line.good.payload)
  }, 120_000)

  it('names the line and the reason in text mode too, without a stack trace', async () => {
    const input = Buffer.concat([
      Buffer.from('{"key":"a","payload":1}\n'),
      Buffer.from(`{"payload":${'['.repeat(10_000)}${']'.repeat(10_000)}}\n`),
      Buffer.from('{"key":"b","payload":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}\n{"payload":1,"createdAt":"1"}\n{"key":"c","payload":2}\n'),
    ])
    const result = await wal.run(['produce'], { input })
    expect(result.code).toBe(4)
    expect(result.stderr).not.toMatch(STACK_TRACE)
    expect(result.stderr).toMatch(/line 2: the line is nested more than 64 levels deep/)
    expect(result.stderr).toMatch(/line 3: the line is not valid UTF-8 \(byte 23 of the line, 0xc3\)/)
    expect(result.stderr).toMatch(/line 4: field "createdAt": expected an ISO 8601 time/)
    expect(result.stdout.trim().split('\n')).toHaveLength(2)
  })
})

describe('the reproductions of issue 15', () => {
  it('refuses a delivery time past 9999, so nothing can wedge the namespace', async () => {
    // The flag's range is checked as the command line is read: a usage error, nothing written.
    const flag = await wal.run(['produce', '-k', 'b', '-p', '1', '--delay', '99999999999d'])
    expect(flag.code).toBe(2)
    expect(flag.stdout).toBe('')
    expect(flag.stderr).toMatch(/--delay "99999999999d" is out of range: expected a duration from 0ms to the end of 9999/)
    const stream = await wal.run(['produce', '--delay', '99999999999d'], { input: '{"payload":1}\n' })
    expect(stream.code).toBe(2)
    expect(stream.stdout).toBe('')
    const lines = await wal.run(['produce'], { input: '{"key":"a","payload":1}\n{"key":"b","payload":1,"notBefore":9000000000000000}\n{"key":"b","payload":1,"createdAt":8640000000000001}\n{"key":"c","payload":2}\n' })
    expect(lines.code).toBe(4)
    expect(lines.stderr).toMatch(/line 2: field "notBefore"/)
    expect(lines.stderr).toMatch(/line 3: field "createdAt"/)
    // Readers and consumers keep working.
    expect((await wal.run(['tail'])).code).toBe(0)
    const consumed = await wal.run(['consume', '--until-idle', '--json'])
    // Exit 8: the run dead-lettered the two (they are not operations), and said so.
    expect(consumed.code).toBe(8)
    expect(JSON.parse(consumed.stdout)).toMatchObject({ targets: [{ applied: 0, deadLettered: 2, lag: 0 }] })
  })

  it('refuses times that are not on the calendar or not ISO 8601', async () => {
    const at = await wal.run(['produce', '-k', 'b', '-p', '1', '--at', '2026-02-30'])
    expect(at.code).toBe(2)
    expect(at.stderr).toMatch(/--at "2026-02-30" is not an ISO 8601 time/)
    const lines = await wal.run(['produce'], { input: '{"payload":1,"createdAt":"1"}\n{"payload":1,"notBefore":"Tuesday 5"}\n' })
    expect(lines.code).toBe(4)
    expect(lines.stderr).toMatch(/line 1: field "createdAt".* found "1"/)
    expect(lines.stderr).toMatch(/line 2: field "notBefore".* found "Tuesday 5"/)
    expect((await wal.run(['tail', '--json'])).stdout).toBe('')
  })

  it('keeps a batch of good lines when one of them holds a value SQLite could not store', async () => {
    const good = Array.from({ length: 999 }, (_, i) => `{"key":"k${i}","payload":${i}}`)
    good.splice(500, 0, '{"key":"x","payload":1,"createdAt":1e300}', '{"key":"y","payload":1,"attempts":1e300}')
    const result = await wal.run(['produce'], { input: `${good.join('\n')}\n` })
    expect(result.code).toBe(4)
    expect(result.stderr).toMatch(/2 of 1001 mutations were rejected \(line 501, 502\); the other 999 are durable/)
    expect(jsonLines((await wal.run(['tail', '--json'])).stdout)).toHaveLength(999)
  })

  it('keeps payload numbers, whitespace and unicode exactly, header names as given, and refuses what it would reshape', async () => {
    const input = TRICKY_PAYLOADS.map((p, i) => `{"key":"t${i}","payload":${p},"headers":{"__proto__":"x","constructor":"y"}}`).join('\n')
    expect((await wal.run(['produce'], { input })).code).toBe(0)
    const first = (await wal.run(['tail', '--json'])).stdout
    const stored = payloadsByKey(first)
    TRICKY_PAYLOADS.forEach((p, i) => expect(stored.get(`t${i}`)).toBe(p))
    for (const line of jsonLines<{ headers: Record<string, string> }>(first)) expect(Object.keys(line.headers)).toEqual(['__proto__', 'constructor'])

    // tail --json | produce -n copy | tail --json: the same payloads and headers, byte for byte.
    writeFileSync(join(wal.cwd, 'first.ndjson'), first)
    expect((await wal.run(['produce', '-n', 'copy'], { input: first })).code).toBe(0)
    const second = (await wal.run(['tail', '-n', 'copy', '--json'])).stdout
    const strip = (text: string): string[] =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => l.replace(/"namespace":"[^"]*"/, '').replace(/,"partition":.*$/, ''))
        .sort()
    expect(strip(second)).toEqual(strip(first))

    const refused = await wal.run(['produce'], { input: '{"payload":1,"headers":["a","b"]}\n{"payload":"\\u00e9","payloadEncoding":"json","key":"\\ud800"}\n' })
    expect(refused.code).toBe(4)
    expect(refused.stderr).toMatch(/line 1: field "headers": expected an object .* found an array/)
    expect(refused.stderr).toMatch(/line 2: field "key"/)
  })

  it('refuses headers in wal\'s own namespace (wal-*), which would be lost or change what wal does, and keeps the lines around them', async () => {
    const put = (id: number): string => JSON.stringify({ op: 'put', table: 't', key: { id }, item: { id } })
    const input = [`{"key":"a","payload":${put(1)}}`, `{"key":"b","payload":${put(2)},"headers":{"wal-txn":"forged"}}`, `{"key":"c","payload":${put(3)},"headers":{"wal-replays":"1","x-wal-trace":"t"}}`].join('\n')
    const result = await wal.run(['produce'], { input: `${input}\n` })
    expect(result.code).toBe(4)
    expect(result.stderr).toMatch(/line 2: field "headers": header "wal-txn" is reserved/)
    expect(result.stderr).toContain('header names starting with "wal-" are wal\'s own')
    expect(jsonLines<{ key: string }>((await wal.run(['tail', '--json'])).stdout).map((e) => e.key).sort()).toEqual(['a', 'c'])
    // A forged part would have waited for a marker and been aborted: nothing is held back.
    const consumed = await wal.run(['consume', '--until-idle', '--json'])
    expect(consumed.code, consumed.stderr).toBe(0)
    expect(consumed.stdout).toMatch(/"applied": 2\b/)
    const flag = await wal.run(['produce', '-H', 'wal-attempts=5', '-k', 'd', '-p', '1'])
    expect(flag.code).toBe(2)
    expect(flag.stderr).toContain('header "wal-attempts" (-H) is reserved')
  })

  it('takes -p and --payload-file text as it is, and bytes that are not UTF-8 as base64', async () => {
    expect((await wal.run(['produce', '-k', 'p', '-p', ' {"n": 9007199254740993 ,"e":1e400} '])).code).toBe(0)
    writeFileSync(join(wal.cwd, 'payload.json'), '{"n":\t123456789012345678901234567890}\n')
    expect((await wal.run(['produce', '-k', 'f', '--payload-file', 'payload.json'])).code).toBe(0)
    writeFileSync(join(wal.cwd, 'payload.bin'), Buffer.from([0xff, 0x00, 0xc3]))
    expect((await wal.run(['produce', '-k', 'b', '--payload-file', 'payload.bin'])).code).toBe(0)
    writeFileSync(join(wal.cwd, 'deep.json'), '['.repeat(100) + ']'.repeat(100))
    const deep = await wal.run(['produce', '-k', 'd', '--payload-file', 'deep.json'])
    expect(deep.code).toBe(4)
    expect(deep.stderr).toMatch(/nested more than 64 levels/)
    const stored = payloadsByKey((await wal.run(['tail', '--json'])).stdout)
    expect(stored.get('p')).toBe('{"n": 9007199254740993 ,"e":1e400}')
    expect(stored.get('f')).toBe('{"n":\t123456789012345678901234567890}')
    expect(stored.get('b')).toBe(JSON.stringify(Buffer.from([0xff, 0x00, 0xc3]).toString('base64')))
  })
})

describe('numbers a target would not apply as written', () => {
  it('in a key are dead-lettered with why (never rounded, never two keys made one); in an item they are stored as written; the log keeps them exact', async () => {
    const put = (key: string, item: string): string => `{"op":"put","table":"t","key":{"id":${key}},"item":${item}}`
    const lines = [
      { key: 'big-key', payload: put('9007199254740993', '{"v":1}') },
      { key: 'near-key', payload: put('9007199254740992', '{"v":2}') },
      { key: 'big-item', payload: put('1', '{"n":123456789012345678901234567890}') },
      { key: 'huge-item', payload: put('2', '{"e":1e400}') },
      { key: 'fine', payload: put('3', '{"safe":9007199254740991,"f":0.1,"exp":1E2,"text":"12345678901234567890"}') },
    ]
    const input = lines.map((l) => `{"key":"${l.key}","payload":${l.payload}}`).join('\n')
    expect((await wal.run(['produce'], { input })).code).toBe(0)
    const consumed = await wal.run(['consume', '--until-idle', '--json'])
    expect(consumed.code, consumed.stderr).toBe(8)
    expect(JSON.parse(consumed.stdout)).toMatchObject({ targets: [{ applied: 4, deadLettered: 1 }] })
    const dead = (JSON.parse((await wal.run(['dlq', 'ls', '--json'])).stdout) as { entries: Array<{ key: string; code: string; errorClass: string; message: string }> }).entries
    expect(Object.fromEntries(dead.map((e) => [e.key, [e.errorClass, e.code]]))).toEqual({
      'big-key': ['fatal', 'NUMBER_NOT_EXACT'],
    })
    expect(dead.find((e) => e.key === 'big-key')!.message).toBe(
      'not a valid operation: field "id": 9007199254740993 is an integer beyond ±(2^53 − 1), which a double holds only rounded (it would be stored as 9007199254740992); send it as a string',
    )
    const { DatabaseSync } = await import('node:sqlite')
    const db = new DatabaseSync(join(wal.stateDir, 'kv', 'default.db'), { readOnly: true })
    try {
      expect(db.prepare('SELECT pk, item FROM items ORDER BY pk').all()).toEqual([
        { pk: '[["id",1]]', item: '{"n":123456789012345678901234567890}' },
        { pk: '[["id",2]]', item: '{"e":1e400}' },
        { pk: '[["id",3]]', item: '{"safe":9007199254740991,"f":0.1,"exp":100,"text":"12345678901234567890"}' },
        { pk: '[["id",9007199254740992]]', item: '{"v":2}' },
      ])
    } finally {
      db.close()
    }
    // The log itself keeps every payload as it was written.
    const stored = payloadsByKey((await wal.run(['tail', '--json'])).stdout)
    for (const l of lines) expect(stored.get(l.key)).toBe(l.payload)
  })
})

describe('a payload file that never ends', () => {
  it('(/dev/zero) is refused once past the largest payload any namespace takes (exit 4, saying so), not read until memory runs out', async () => {
    const result = await wal.run(['produce', '--json', '-k', 'z', '--payload-file', '/dev/zero'])
    expect(result.code).toBe(4)
    expect(result.stdout).toContain('--payload-file /dev/zero is larger than 64 MiB, the most a payload may be')
    expect(JSON.parse(result.stderr)).toMatchObject({ error: { code: 'WAL_INPUT_REJECTED', exitCode: 4 } })
    expect((await wal.run(['tail', '--json'])).stdout).toBe('')
  }, 60_000)
})

describe('a pretty-printed payload (line breaks between its tokens)', () => {
  it('is kept with spaces for its line breaks, so that tail --json is one envelope a line and reads back the same', async () => {
    writeFileSync(join(wal.cwd, 'pretty.json'), '{\r\n  "order": 42,\n  "lines": [\n    1,\n    2\n  ]\n}\n')
    expect((await wal.run(['produce', '-k', 'file', '--payload-file', 'pretty.json'])).code).toBe(0)
    expect((await wal.run(['produce', '-k', 'flag', '-p', '[1,\n2]'])).code).toBe(0)
    // A lone CR inside a stdin line is no line break to `produce`, but is one to many NDJSON readers.
    expect((await wal.run(['produce'], { input: '{"key":"cr","payload":{"a":\r1}}\n' })).code).toBe(0)
    const first = (await wal.run(['tail', '--json'])).stdout
    const lines = first.split('\n').filter(Boolean)
    expect(lines).toHaveLength(3)
    const stored = payloadsByKey(first)
    expect(stored.get('file')).toBe('{    "order": 42,   "lines": [     1,     2   ] }')
    expect(stored.get('flag')).toBe('[1, 2]')
    expect(stored.get('cr')).toBe('{"a": 1}')
    expect((await wal.run(['produce', '-n', 'copy'], { input: first })).code).toBe(0)
    expect(payloadsByKey((await wal.run(['tail', '-n', 'copy', '--json'])).stdout)).toEqual(stored)
  })
})
