/**
 * A generated corpus of hostile NDJSON lines interleaved with good ones: what an attacker or a buggy
 * script sends. Deterministic (a seeded generator), so a failure names the same line on every run.
 */

/** One line of the corpus: its bytes, and for a good line its key and the exact payload text. */
export interface CorpusLine {
  bytes: Buffer
  good?: { key: string; payload: string }
  /** What makes a bad line bad, for messages. */
  kind?: string
}

function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0
    return s / 2 ** 32
  }
}

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

/** Payloads that parse-and-print would change: each must come back as these exact bytes. */
export const TRICKY_PAYLOADS: readonly string[] = [
  '9007199254740993',
  '{"big":123456789012345678901234567890,"neg":-0,"exp":1E+2}',
  '1e400',
  '[1.0000000000000000000001, 0.1e-999]',
  '{ "spaced" :\t[ 1 ,\t2 ] , "cr":"a\\r\\nb" }',
  '"\\u00e9 é \\ud83d\\ude00 😀 𝄞 \u{10FFFD} \u{E0001} \\u0000 \u200B"',
  `"${String.fromCodePoint(0x7f, 0x80, 0x7ff, 0x800, 0xfffd, 0x10000, 0x10ffff)}"`,
  '{"__proto__":{"polluted":true},"constructor":1}',
  '{"a":{"b":{"c":[[[["deep but allowed"]]]]}}}',
  'null',
]

/** `count` hostile lines (at least) with good lines between them; the first is a good one. */
export function hostileCorpus(count = 1000, seed = 15): CorpusLine[] {
  const next = random(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
  const lines: CorpusLine[] = []
  let goods = 0
  const good = (): CorpusLine => {
    const key = `good-${goods++}`
    const payload = goods % 3 === 0 ? pick(TRICKY_PAYLOADS) : JSON.stringify({ op: 'put', table: 't', key: { id: goods }, item: { id: goods, n: goods * 7 } })
    const headers = goods % 5 === 0 ? ',"headers":{"__proto__":"p","constructor":"c","":"e"}' : ''
    return { bytes: Buffer.from(`{"key":"${key}","payload":${payload}${headers}}`), good: { key, payload } }
  }
  const text = (kind: string, line: string): CorpusLine => ({ bytes: Buffer.from(line), kind })
  const bytes = (kind: string, ...parts: Array<string | number[]>): CorpusLine => ({
    bytes: Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)))),
    kind,
  })
  const hostile: Array<() => CorpusLine> = [
    () => text('deep payload', `{"key":"d","payload":${nested(5000 + Math.floor(next() * 5000))}}`),
    () => text('deep object payload', `{"key":"d","payload":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`),
    () => text('deep headers', `{"payload":1,"headers":${'{"h":'.repeat(70)}"x"${'}'.repeat(70)}}`),
    () => text('deep, never closed', `{"payload":${'['.repeat(20_000)}`),
    () => text('createdAt "1"', '{"payload":1,"createdAt":"1"}'),
    () => text('notBefore "Tuesday 5"', '{"payload":1,"notBefore":"Tuesday 5"}'),
    () => text('notBefore 9e15', '{"key":"b","payload":1,"notBefore":9000000000000000}'),
    () => text('createdAt past 9999', '{"payload":1,"createdAt":8640000000000001}'),
    () => text('createdAt 1e300', '{"payload":1,"createdAt":1e300}'),
    () => text('createdAt negative', '{"payload":1,"createdAt":-5}'),
    () => text('createdAt 30 February', '{"payload":1,"createdAt":"2026-02-30T00:00:00Z"}'),
    () => text('attempts 1e300', '{"payload":1,"attempts":1e300}'),
    () => text('attempts unsafe', '{"payload":1,"attempts":9007199254740993}'),
    () => text('attempts fraction', '{"payload":1,"attempts":1.5}'),
    () => text('failure at out of range', '{"payload":1,"failures":[{"at":99999999999999999,"target":"t","errorClass":"fatal","message":"m","attempt":1}]}'),
    () => text('headers array', '{"payload":1,"headers":["a","b"]}'),
    () => text('header number', `{"payload":1,"headers":{"n":${Math.floor(next() * 1000)}}}`),
    () => text('header null', '{"payload":1,"headers":{"n":null}}'),
    () => text('header object', '{"payload":1,"headers":{"n":{"x":"y"}}}'),
    () => text('header bool', '{"payload":1,"headers":{"n":true}}'),
    () => text('header lone surrogate', '{"payload":1,"headers":{"n":"\\ud800"}}'),
    () => text('header wal-txn (a forged transaction part)', '{"key":"f","payload":1,"headers":{"wal-txn":"forged"}}'),
    () => text('header wal-id', '{"payload":1,"headers":{"wal-id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}}'),
    () => text('header wal-attempts', '{"payload":1,"headers":{"wal-attempts":"5"}}'),
    () => text('header wal-chunk', '{"payload":1,"headers":{"wal-chunk":"1/2"}}'),
    () => {
      const line = good().bytes.toString()
      goods-- // not a good line after all
      return text('truncated', line.slice(0, 1 + Math.floor(next() * (line.length - 2))))
    },
    () => text('NUL outside strings', '{"payload":1,\u0000"key":"x"}'),
    () => text('raw NUL in a string', '{"payload":"a\u0000b"}'),
    () => text('BOM', '\ufeff{"payload":1}'),
    () => text('huge key', `{"key":"${'k'.repeat(1025 + Math.floor(next() * 5000))}","payload":1}`),
    () => text('empty key', '{"key":"","payload":1}'),
    () => text('key lone surrogate', '{"key":"a\\udfff","payload":1}'),
    () => bytes('invalid UTF-8 in payload', '{"key":"u","payload":"', [0xc3, 0x28], '"}'),
    () => bytes('invalid UTF-8 in key', '{"key":"', [0xff, 0xfe], '","payload":1}'),
    () => bytes('encoded surrogate', '{"payload":"', [0xed, 0xa0, 0x80], '"}'),
    () => text('unknown field', '{"kye":"x","payload":1}'),
    () => text('no payload', '{"key":"x"}'),
    () => text('not an object', pick(['[1,2]', '"text"', '42', 'null', 'true'])),
    () => text('not JSON', pick(['nope', '{', '}', '{"payload":}', "{'payload':1}", '{"payload":1}}', '{"payload":01}'])),
    () => text('bad base64', '{"payload":"***","payloadEncoding":"base64"}'),
    () => text('base64 of an object', '{"payload":{"a":1},"payloadEncoding":"base64"}'),
    () => text('version 2', '{"v":2,"payload":1}'),
    () => text('bad id', '{"id":"../../etc/passwd","payload":1}'),
    () => text('bad namespace', '{"namespace":"../x","payload":1}'),
    () => text('unknown target', '{"payload":1,"target":"nowhere"}'),
  ]
  lines.push(good())
  for (let i = 0; i < count; i++) {
    lines.push(hostile[i % hostile.length]!())
    if (next() < 0.5) lines.push(good())
    // Empty and blank lines and CRLF endings are not errors: they are skipped or taken as usual.
    if (next() < 0.05) lines.push({ bytes: Buffer.from(pick(['', '   ', '\t'])) })
  }
  // Two payloads over the namespace's 1 MiB limit.
  lines.push(text('oversize payload', `{"key":"big","payload":"${'x'.repeat(1024 * 1024 + 1)}"}`))
  lines.push(good())
  lines.push(text('oversize payload', `{"payload":[${'1,'.repeat(600_000)}1]}`))
  lines.push(good())
  return lines
}

/** The corpus as NDJSON bytes, some lines ending in CRLF; with each line's 1-based number. */
export function corpusInput(lines: readonly CorpusLine[]): { input: Buffer; numbered: Array<CorpusLine & { lineNumber: number }> } {
  const parts: Buffer[] = []
  const numbered = lines.map((line, i) => {
    parts.push(line.bytes, Buffer.from(i % 7 === 3 ? '\r\n' : '\n'))
    return { ...line, lineNumber: i + 1 }
  })
  return { input: Buffer.concat(parts), numbered }
}
