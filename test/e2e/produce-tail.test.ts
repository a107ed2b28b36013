import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { join } from 'node:path'

import { jsonLines, makeSandbox, ndjson, type Ack, type Envelope, type Sandbox } from '../helpers/wal.js'



let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

describe('wal produce and wal tail on the embedded default namespace', () => {
  it('acks a mutation given with flags and reads it back', async () => {
    const produced = await wal.run(['produce', '-k', 'user-42', '-p', '{"name":"Ada"}', '-H', 'source=test'])
    expect(produced.stderr).toBe('')
    expect(produced.code).toBe(0)
    expect(produced.stdout).toMatch(/^line=1 id=[0-9A-Z]{26} partition=\d+ offset=0 durable=true\n$/)

    const tailed = await wal.run(['tail', '--json'])
    expect(tailed.code).toBe(0)
    const [record] = jsonLines<Envelope>(tailed.stdout)
    expect(record).toMatchObject({ v: 1, namespace: 'default', key: 'user-42', payload: { name: 'Ada' }, headers: { source: 'test' }, offset: 0 })
    expect(produced.stdout).toContain(`id=${record!.id} partition=${record!.partition}`)
  })

  it('prints one ack per stdin line, with the line number, partition and offset', async () => {
    const lines = Array.from({ length: 50 }, (_, i) => ({ key: `k${i % 5}`, payload: { i } }))
    const result = await wal.run(['produce', '--json'], { input: ndjson(lines) })
    expect(result.code).toBe(0)
    const acks = jsonLines<Ack>(result.stdout)
    expect(acks.map((a) => a.line)).toEqual(lines.map((_, i) => i + 1))
    expect(acks.every((a) => a.durable && a.namespace === 'default')).toBe(true)
    // Offsets per partition are 0..n-1 in input order.
    const byPartition = new Map<number, number[]>()
    for (const ack of acks) byPartition.set(ack.partition, [...(byPartition.get(ack.partition) ?? []), ack.offset])
    for (const offsets of byPartition.values()) expect(offsets).toEqual(offsets.map((_, i) => i))
    // The same key always lands on the same partition.
    const partitionOfKey = new Map<string, number>()
    acks.forEach((ack, i) => {
      const key = lines[i]!.key
      expect(partitionOfKey.get(key) ?? ack.partition).toBe(ack.partition)
      partitionOfKey.set(key, ack.partition)
    })
  })

  it('stores --delay as notBefore and keeps a line\'s own notBefore', async () => {
    const before = Date.now()
    await wal.run(['produce', '-k', 'a', '-p', '1', '--delay', '15m'])
    await wal.run(['produce', '--delay', '3d'], { input: ndjson([{ key: 'b', payload: 2 }, { key: 'c', payload: 3, notBefore: '2030-01-01T00:00:00Z' }]) })
    await wal.run(['produce', '-k', 'd', '-p', '4', '--at', '2031-05-06T07:08:09Z'])
    const records = jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout)
    const byKey = Object.fromEntries(records.map((r) => [r.key, r]))
    const aDelay = Date.parse(byKey.a!.notBefore!) - before
    expect(aDelay).toBeGreaterThanOrEqual(15 * 60_000)
    expect(aDelay).toBeLessThan(15 * 60_000 + 30_000)
    expect(Date.parse(byKey.b!.notBefore!) - before).toBeGreaterThanOrEqual(3 * 86_400_000)
    expect(byKey.c!.notBefore).toBe('2030-01-01T00:00:00.000Z')
    expect(byKey.d!.notBefore).toBe('2031-05-06T07:08:09.000Z')
  })

  it('spreads delays with --jitter within the asked range', async () => {
    const lines = Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, payload: i }))
    const before = Date.now()
    await wal.run(['produce', '--delay', '1m', '--jitter', '10m'], { input: ndjson(lines) })
    const delays = jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout).map((r) => Date.parse(r.notBefore!) - before)
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(60_000)
    expect(Math.max(...delays)).toBeLessThanOrEqual(11 * 60_000 + 30_000)
    expect(new Set(delays).size).toBeGreaterThan(100)
  })

  it('writes a mutation once per idempotency key and acks repeats with the original position', async () => {
    const first = await wal.run(['produce', '-k', 'o1', '-p', '{"v":1}', '--idempotency-key', 'order-1', '--json'])
    const again = await wal.run(['produce', '-k', 'o1', '-p', '{"v":2}', '--idempotency-key', 'order-1', '--json'])
    const inStream = await wal.run(['produce', '--json'], {
      input: ndjson([
        { key: 'o1', payload: 3, idempotencyKey: 'order-1' },
        { key: 'o2', payload: 4, idempotencyKey: 'order-2' },
        { key: 'o2', payload: 5, idempotencyKey: 'order-2' },
      ]),
    })
    const [a] = jsonLines<Ack>(first.stdout)
    const [b] = jsonLines<Ack>(again.stdout)
    const [c, d, e] = jsonLines<Ack>(inStream.stdout)
    expect(again.code).toBe(0)
    expect(b).toMatchObject({ id: a!.id, partition: a!.partition, offset: a!.offset, duplicate: true })
    expect(c).toMatchObject({ id: a!.id, duplicate: true })
    expect(d!.duplicate).toBeUndefined()
    expect(e).toMatchObject({ id: d!.id, offset: d!.offset, duplicate: true })
    const records = jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout)
    expect(records.map((r) => r.payload)).toEqual([{ v: 1 }, 4])
  })

  it('stores a payload file as JSON when it parses, and as bytes otherwise', async () => {
    const { writeFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    writeFileSync(join(wal.dir, 'doc.json'), '{"deep":{"list":[1,2,3]}}')
    writeFileSync(join(wal.dir, 'blob.bin'), Buffer.from([0, 255, 1, 254, 10, 13]))
    await wal.run(['produce', '-k', 'j', '--payload-file', join(wal.dir, 'doc.json')])
    await wal.run(['produce', '-k', 'b', '--payload-file', join(wal.dir, 'blob.bin')])
    const records = jsonLines<Envelope>((await wal.run(['tail', '--json', '-k', 'j'])).stdout)
    expect(records.at(-1)).toMatchObject({ payload: { deep: { list: [1, 2, 3] } }, payloadEncoding: 'json' })
    const [blob] = jsonLines<Envelope>((await wal.run(['tail', '--json', '-k', 'b'])).stdout)
    expect(blob).toMatchObject({ payloadEncoding: 'base64' })
    expect(Buffer.from(blob!.payload as string, 'base64')).toEqual(Buffer.from([0, 255, 1, 254, 10, 13]))
  })
})

describe('wal tail bounds', () => {
  async function seed(count: number): Promise<Ack[]> {
    const lines = Array.from({ length: count }, (_, i) => ({ key: `k${i % 4}`, payload: { i } }))
    return jsonLines<Ack>((await wal.run(['produce', '--json'], { input: ndjson(lines) })).stdout)
  }

  it('reads from an offset, from one partition, from the end, with --max and by key', async () => {
    const acks = await seed(40)
    const all = jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout)
    expect(all).toHaveLength(40)
    const fromTwo = jsonLines<Envelope>((await wal.run(['tail', '--json', '--from', '2'])).stdout)
    expect(fromTwo.every((r) => r.offset >= 2)).toBe(true)
    expect(fromTwo).toHaveLength(all.filter((r) => r.offset >= 2).length)
    const p = acks[0]!.partition
    const onePartition = jsonLines<Envelope>((await wal.run(['tail', '--json', '--from', `${p}:3`])).stdout)
    expect(onePartition.length).toBeGreaterThan(0)
    expect(onePartition.every((r) => r.partition === p && r.offset >= 3)).toBe(true)
    expect((await wal.run(['tail', '--from', 'end'])).stdout).toBe('')
    expect(jsonLines((await wal.run(['tail', '--json', '--max', '7'])).stdout)).toHaveLength(7)
    const byKey = jsonLines<Envelope>((await wal.run(['tail', '--json', '-k', 'k1'])).stdout)
    expect(byKey.map((r) => (r.payload as { i: number }).i)).toEqual([1, 5, 9, 13, 17, 21, 25, 29, 33, 37])
  })

  it('reads a time window by append time', async () => {
    await seed(5)
    const middle = new Date().toISOString()
    await new Promise((resolve) => setTimeout(resolve, 20))
    await seed(3)
    expect(jsonLines((await wal.run(['tail', '--json', '--from', middle])).stdout)).toHaveLength(3)
    expect(jsonLines((await wal.run(['tail', '--json', '--until', middle])).stdout)).toHaveLength(5)
    expect(jsonLines((await wal.run(['tail', '--json', '--from', '1h'])).stdout)).toHaveLength(8)
  })

  it('--until end stops at the end taken at start, while a producer keeps writing', async () => {
    await seed(2000)
    const producer = wal.spawn(['produce'])
    producer.stdout!.resume()
    let n = 0
    const feed = setInterval(() => {
      producer.stdin!.write(ndjson(Array.from({ length: 200 }, () => ({ key: `live${n++ % 7}`, payload: { n } }))))
    }, 5)
    try {
      await new Promise((resolve) => setTimeout(resolve, 200))
      const tailed = await wal.run(['tail', '--json', '--until', 'end'])
      expect(tailed.code).toBe(0)
      const records = jsonLines<Envelope>(tailed.stdout)
      expect(records.length).toBeGreaterThanOrEqual(2000)
      // Nothing after the snapshot: per partition, offsets are a gap-free prefix.
      const perPartition = new Map<number, number[]>()
      for (const r of records) perPartition.set(r.partition, [...(perPartition.get(r.partition) ?? []), r.offset])
      for (const offsets of perPartition.values()) expect(offsets).toEqual(offsets.map((_, i) => i))
    } finally {
      clearInterval(feed)
      producer.stdin!.end()
      await new Promise((resolve) => producer.on('close', resolve))
    }
    expect(n).toBeGreaterThan(0)
  })

  it('--follow prints mutations produced after it started', async () => {
    await seed(3)
    // From a time after the seeded ones, not from the end as the follower finds it: a follower slow to
    // start (a busy machine) would otherwise take its end after new1 and wait for a third mutation.
    await new Promise((resolve) => setTimeout(resolve, 20))
    const since = new Date().toISOString()
    const follower = wal.spawn(['tail', '--follow', '--json', '--max', '2', '--from', since])
    let out = ''
    follower.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    const closed = new Promise<number | null>((resolve) => follower.on('close', resolve))
    await new Promise((resolve) => setTimeout(resolve, 500))
    await wal.run(['produce', '-k', 'new1', '-p', '1'])
    await wal.run(['produce', '-k', 'new2', '-p', '2'])
    expect(await closed).toBe(0)
    expect(jsonLines<Envelope>(out).map((r) => r.key)).toEqual(['new1', 'new2'])
  })
})

describe('wal produce --rate', () => {
  it('writes stdin lines no faster than the rate, steadily, and acks every one', async () => {
    const lines = Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, payload: i }))
    const started = Date.now()
    const result = await wal.run(['produce', '--rate', '20/s', '--json'], { input: ndjson(lines) })
    const elapsedMs = Date.now() - started
    expect(result.code, result.stderr).toBe(0)
    expect(jsonLines<Ack>(result.stdout)).toHaveLength(60)
    // A second's worth may go at once; the other 40 take at least two seconds at 20/s.
    expect(elapsedMs).toBeGreaterThanOrEqual(1900)
    const appended = jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout).map((r) => Date.parse(r.appendedAt)).sort((a, b) => a - b)
    expect(appended.at(-1)! - appended[0]!).toBeGreaterThanOrEqual(1900)
    // Not two bursts: the last 40 are spread over many commits.
    expect(new Set(appended.slice(20)).size).toBeGreaterThanOrEqual(10)
  })

  it('refuses a rate that is not one, before writing anything', async () => {
    const result = await wal.run(['produce', '--rate', 'fast'], { input: ndjson([{ key: 'a', payload: 1 }]) })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('--rate "fast" is not a rate')
    expect((await wal.run(['tail', '--json'])).stdout).toBe('')
  })
})

describe('large batches, on the writer thread and in process', () => {
  it('writes the same log either way: every good line acked in order, a bad one refused, payloads byte-exact', async () => {
    const exact = ['{"n":123456789012345678901234567890,"z":-0}', '"\\ud800 \\u00e9 \\\\"', '[ 1 ,2 ]', '1.0e+2']
    const lines = Array.from({ length: 1200 }, (_, i) => {
      if (i === 499) return '{"key":"k","payload":{"a":1}' // cut short: refused, its neighbours land
      if (i % 100 === 7) return JSON.stringify({ key: `k${i % 9}`, payload: { i }, headers: { h: 'v' }, idempotencyKey: `idem-${i}` })
      return `{"key":"k${i % 9}","payload":${exact[i % exact.length]}}`
    })
    const logs: Array<Array<{ key: string; partition: number; offset: number; payload: string }>> = []
    for (const mode of ['on', 'off']) {
      const env = { WAL_HOME: join(wal.dir, `state-${mode}`), WAL_WRITER_THREAD: mode }
      const result = await wal.run(['produce', '--json'], { input: `${lines.join('\n')}\n`, env })
      expect(result.code, result.stderr).toBe(4)
      const acks = jsonLines<Ack & { error?: { message: string } }>(result.stdout)
      expect(acks.map((a) => a.line)).toEqual(lines.map((_, i) => i + 1))
      expect(acks.filter((a) => !a.durable).map((a) => a.line)).toEqual([500])
      expect(acks[499]!.error!.message).toMatch(/not valid JSON/)
      const tailed = await wal.run(['tail', '--json'], { env })
      const records = tailed.stdout.trimEnd().split('\n')
      expect(records).toHaveLength(1199)
      logs.push(
        records.map((text) => {
          const r = JSON.parse(text) as Envelope
          // The payload's text as tail prints it: the text it was produced as.
          const payload = text.slice(text.indexOf('"payload":') + 10, text.indexOf(',"payloadEncoding"'))
          return { key: r.key, partition: r.partition, offset: r.offset, payload }
        }),
      )
      for (const record of logs.at(-1)!) if (!record.payload.startsWith('{"i"')) expect(exact).toContain(record.payload)
    }
    expect(logs[0]!.map((r) => [r.partition, r.offset, r.key, r.payload]).sort()).toEqual(logs[1]!.map((r) => [r.partition, r.offset, r.key, r.payload]).sort())
  })
})
