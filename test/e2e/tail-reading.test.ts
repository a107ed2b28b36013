import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { partitionForKey } from '../../src/lib/log/partitioner.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 3, targets: { store: { type: 'kv' } } } } }))
})
afterEach(() => wal.cleanup())

/** Produces one line at a time, so every record has its own append time. */
async function produceEach(lines: ReadonlyArray<Record<string, unknown>>): Promise<Ack[]> {
  const acks: Ack[] = []
  for (const line of lines) {
    const result = await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([line]) })
    expect(result.code, result.stderr).toBe(0)
    acks.push(...jsonLines<Ack>(result.stdout))
  }
  return acks
}

describe('tail --from -N and P:-N', () => {
  it('prints the last N records of the whole log in time order, and the last N of one partition', async () => {
    const acks = await produceEach(Array.from({ length: 12 }, (_, i) => ({ key: `k${i}`, payload: { i } })))
    const last5 = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--from', '-5', '--json'])).stdout)
    expect(last5.map((r) => r.id)).toEqual(acks.slice(-5).map((a) => a.id))
    const partition = acks.at(-1)!.partition
    const ofPartition = acks.filter((a) => a.partition === partition)
    const last2 = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--from', `${partition}:-2`, '--json'])).stdout)
    expect(last2.map((r) => [r.partition, r.offset])).toEqual(ofPartition.slice(-2).map((a) => [a.partition, a.offset]))
    // More than the log holds: all of it.
    expect(jsonLines((await wal.run(['tail', '-n', 'orders', '--from', '-100', '--json'])).stdout)).toHaveLength(12)

    // Written in one group commit (one append time): still the last ones written.
    const batch = jsonLines<Ack>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(Array.from({ length: 30 }, (_, i) => ({ key: `b${i}`, payload: i }))) })).stdout)
    const lastOfBatch = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--from', '-4', '--json'])).stdout)
    expect(lastOfBatch.map((r) => r.id)).toEqual(batch.slice(-4).map((a) => a.id))
    const bad = await wal.run(['tail', '-n', 'orders', '--from', '7:-2'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('partitions 0 to 2')
  })
})

describe('tail --from -N over a partition that has been quiet', () => {
  it('gives the last N of the log and of that partition, though its last records are far back in the log', async () => {
    const quiet = jsonLines<Ack>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson([1, 2, 3].map((i) => ({ key: 'quiet', payload: i }))) })).stdout)
    const q = quiet[0]!.partition
    // 300 records after them, none in the quiet partition.
    const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`).filter((k) => partitionForKey(k, 3) !== q).slice(0, 300)
    const busy = jsonLines<Ack>((await wal.run(['produce', '-n', 'orders', '--json'], { input: ndjson(keys.map((key, i) => ({ key, payload: i }))) })).stdout)
    expect(busy).toHaveLength(300)
    expect(busy.every((a) => a.partition !== q)).toBe(true)
    const last5 = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--from', '-5', '--json'])).stdout)
    expect(last5.map((r) => r.id)).toEqual(busy.slice(-5).map((a) => a.id))
    const ofQuiet = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--from', `${q}:-2`, '--json'])).stdout)
    expect(ofQuiet.map((r) => r.id)).toEqual(quiet.slice(-2).map((a) => a.id))
    // More than the log holds: all of it, in the order it was written.
    const all = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--from', '-400', '--json'])).stdout)
    expect(all.map((r) => r.id)).toEqual([...quiet, ...busy].map((a) => a.id))
  })
})

describe('tail --from -N --follow', () => {
  it('prints the last N, then new records as they come', async () => {
    await produceEach([{ key: 'a', payload: 1 }, { key: 'b', payload: 2 }, { key: 'c', payload: 3 }])
    const child = wal.spawn(['tail', '-n', 'orders', '--from', '-2', '--follow', '--format', '%k\\n'])
    let out = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    await waitFor(() => out === 'b\nc\n', { timeoutMs: 30_000 })
    await produceEach([{ key: 'd', payload: 4 }])
    await waitFor(() => out === 'b\nc\nd\n', { timeoutMs: 30_000 })
    child.kill('SIGINT')
    await new Promise((resolve) => child.once('exit', resolve))
  })
})

describe('tail --where', () => {
  it('filters on key, headers, payload fields and offsets with the dlq --where language', async () => {
    await wal.run(['produce', '-n', 'orders', '--json'], {
      input: ndjson([
        { key: 'a', payload: { op: 'put', price: 5 }, headers: { source: 'crm' } },
        { key: 'b', payload: { op: 'delete', price: 50 }, headers: { source: 'crm' } },
        { key: 'c', payload: { op: 'delete', price: 500 }, headers: { source: 'web' } },
      ]),
    })
    const keys = async (where: string): Promise<string[]> => jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--where', where, '--json'])).stdout).map((r) => r.key).sort()
    expect(await keys('headers.source == "crm" and payload.op == "delete"')).toEqual(['b'])
    expect(await keys('payload.price >= 50')).toEqual(['b', 'c'])
    expect(await keys('key ~= "^[ab]$" and offset >= 0')).toEqual(['a', 'b'])
    const typo = await wal.run(['tail', '-n', 'orders', '--where', 'kye == "a"'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain('did you mean "key"?')
  })
})

describe('tail --format', () => {
  it('prints kcat-like placeholders, with \\n escapes, and json as --json', async () => {
    const [ack] = jsonLines<Ack>((await wal.run(['produce', '-n', 'orders', '--json', '-k', 'user-1', '-p', '{"a":1}', '-H', 'source=crm'])).stdout)
    const out = await wal.run(['tail', '-n', 'orders', '--format', '%k|%s|%h|%p|%o|%i|%t|100%%\\n'])
    expect(out.code, out.stderr).toBe(0)
    expect(out.stdout).toBe(`user-1|{"a":1}|source=crm|${ack!.partition}|${ack!.offset}|${ack!.id}|orders|100%\n`)
    const times = (await wal.run(['tail', '-n', 'orders', '--format', '%T'])).stdout
    expect(Math.abs(Number(times) - Date.now())).toBeLessThan(3_600_000)
    expect((await wal.run(['tail', '-n', 'orders', '--format', 'json'])).stdout).toBe((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    const unknown = await wal.run(['tail', '-n', 'orders', '--format', '%q'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('unknown placeholder %q')
  })

  it('never lets escape sequences in keys, headers or payloads reach the terminal raw', async () => {
    const hostile = 'k\u001b]0;owned\u0007\u001b[2J\r\nx'
    await wal.run(['produce', '-n', 'orders'], { input: ndjson([{ key: hostile, payload: { s: '\u001b[31mred' }, headers: { ['h\u001b[1m']: 'v\u009b' } }]) })
    const out = await wal.run(['tail', '-n', 'orders', '--format', '%k %s %h\\n'])
    expect(out.code, out.stderr).toBe(0)
    // eslint-disable-next-line no-control-regex -- looking for raw control characters is the point
    expect(out.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/)
    expect(out.stdout.split('\n')).toHaveLength(2)
    expect(out.stdout).toContain('k\\u001b]0;owned\\u0007\\u001b[2J\\r\\nx')
    // JSON stays exact.
    const [record] = jsonLines<Envelope>((await wal.run(['tail', '-n', 'orders', '--format', 'json'])).stdout)
    expect(record!.key).toBe(hostile)
  })
})
