import { describe, expect, it } from 'vitest'

import type { LogRecord } from '../../src/lib/envelope/envelope.js'
import { CHUNK_ENCODING_HEADER, chunkValue, Reassembler } from '../../src/lib/log/chunks.js'

const ID = '01M92W5G4JNSAE6DPY4D89CSKT'

/** Records as a Kafka reader decodes them: chunks carry their bytes raw, and the whole value's encoding. */
function records(value: string, chunkBytes: number, partition = 0, firstOffset = 0, id = ID): LogRecord[] {
  return chunkValue(Buffer.from(value), chunkBytes).map((chunk, i) => ({
    id,
    namespace: 'ns',
    key: 'k',
    payload: { encoding: 'base64', bytes: chunk.value },
    headers: Object.assign(Object.create(null) as Record<string, string>, { user: 'x', ...chunk.headers, [CHUNK_ENCODING_HEADER]: 'json' }),
    createdAtMs: 1,
    notBeforeMs: null,
    target: null,
    idempotencyKey: null,
    attempts: 0,
    failures: [],
    partition,
    offset: firstOffset + i,
    appendedAtMs: 1,
  }))
}

const plain = (offset: number, partition = 0): LogRecord => ({ ...records('1', 10, partition, offset, '01M92W5G4JNSAE6DPY4D89CSKV')[0]!, headers: Object.create(null) as Record<string, string>, payload: { encoding: 'json', json: '1' } })

describe('chunked payloads', () => {
  const value = JSON.stringify({ text: 'é'.repeat(40), n: [1, 2, 3] })

  it('are put back together byte-exact, at the offset of the last chunk, without the chunk headers', () => {
    const r = new Reassembler('here')
    const chunks = records(value, 7)
    expect(chunks.length).toBeGreaterThan(5)
    const out = chunks.flatMap((c) => r.push(c))
    expect(out).toHaveLength(1)
    expect(out[0]!.payload).toEqual({ encoding: 'json', json: value })
    expect(out[0]!.offset).toBe(chunks.length - 1)
    expect({ ...out[0]!.headers }).toEqual({ user: 'x' })
  })

  it('interleave across partitions, and pass ordinary records through', () => {
    const r = new Reassembler('here')
    const a = records(value, 9, 0)
    const b = records(value, 9, 1)
    const out: LogRecord[] = []
    for (let i = 0; i < a.length; i++) out.push(...r.push(a[i]!), ...r.push(b[i]!))
    out.push(...r.push(plain(100)))
    expect(out.map((o) => [o.partition, o.poison === undefined])).toEqual([
      [0, true],
      [1, true],
      [0, true],
    ])
  })

  it('with a chunk missing, damaged, or cut short by another record, are one poison record', () => {
    const missing = records(value, 7)
    missing.splice(2, 1)
    const r = new Reassembler('here')
    const out = missing.flatMap((c) => r.push(c))
    expect(out).toHaveLength(1)
    expect(out[0]!.poison?.error).toMatch(/chunk 2 of \d+ is missing/)

    const damaged = records(value, 7)
    damaged[1] = { ...damaged[1]!, payload: { encoding: 'base64', bytes: Buffer.from('XXXXXXX') } }
    const r2 = new Reassembler('here')
    expect(damaged.flatMap((c) => r2.push(c))[0]!.poison?.error).toMatch(/SHA-256/)

    const r3 = new Reassembler('here')
    const cut = [...records(value, 7).slice(0, 3), plain(3)]
    const out3 = cut.flatMap((c) => r3.push(c))
    expect(out3.map((o) => o.poison === undefined)).toEqual([false, true])
    expect(out3[0]!.offset).toBe(2)

    const r4 = new Reassembler('here')
    const noFirst = records(value, 7).slice(1)
    expect(noFirst.flatMap((c) => r4.push(c)).map((o) => o.poison?.error)).toEqual([expect.stringMatching(/chunk 0 of \d+ is missing/)])
  })

  it('hold back a group not complete yet (a writer still writing)', () => {
    const r = new Reassembler('here')
    expect(records(value, 7).slice(0, 3).flatMap((c) => r.push(c))).toEqual([])
  })
})
