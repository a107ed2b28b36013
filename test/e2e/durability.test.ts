import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { jsonLines, makeSandbox, ndjson, waitFor, type Ack, type Envelope, type Sandbox } from '../helpers/wal.js'



let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

function lines(count: number, prefix: string): string {
  return ndjson(Array.from({ length: count }, (_, i) => ({ key: `${prefix}-${i % 97}`, payload: { seq: i, producer: prefix, pad: 'x'.repeat(150) } })))
}

describe('acked means durable', () => {
  it('keeps every acked mutation exactly once, at its acked offset, after a SIGKILL mid-stream', async () => {
    for (let round = 0; round < 3; round++) {
      const child = wal.spawn(['produce', '-n', 'crash', '--json'])
      let out = ''
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      const closed = new Promise((resolve) => child.on('close', resolve))
      child.stdin!.on('error', () => undefined)
      // Keep feeding so the kill lands in the middle of group commits.
      const payload = lines(200_000, `r${round}`)
      child.stdin!.write(payload)
      await waitFor(() => out.split('\n').length > 2000 + round * 3000)
      child.kill('SIGKILL')
      await closed

      // Only complete lines are acks the user saw.
      const acked = jsonLines<Ack>(out.slice(0, out.lastIndexOf('\n') + 1))
      expect(acked.length).toBeGreaterThanOrEqual(1000)
      const tailed = await wal.run(['tail', '-n', 'crash', '--json'])
      expect(tailed.code).toBe(0)
      const records = jsonLines<Envelope>(tailed.stdout)
      const byId = new Map<string, Envelope[]>()
      for (const r of records) byId.set(r.id, [...(byId.get(r.id) ?? []), r])
      for (const ack of acked) {
        const found = byId.get(ack.id)
        expect(found, `acked ${ack.id} is in the log`).toHaveLength(1)
        expect(found![0]).toMatchObject({ partition: ack.partition, offset: ack.offset })
      }
      // The log itself stays consistent: per partition, offsets are gap-free from 0.
      const perPartition = new Map<number, number[]>()
      for (const r of records) perPartition.set(r.partition, [...(perPartition.get(r.partition) ?? []), r.offset])
      for (const offsets of perPartition.values()) expect(offsets).toEqual(offsets.map((_, i) => i))
    }
  })
})

describe('interrupting a produce', () => {
  it('stops reading on Ctrl-C, keeps every acked mutation, and exits 130', async () => {
    const child = wal.spawn(['produce', '--json'])
    let out = ''
    let err = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    child.stdin!.write(lines(10, 'first'))
    await waitFor(() => out.split('\n').length - 1 === 10)
    child.kill('SIGINT')
    expect(await closed).toBe(130)
    expect(err).toMatch(/interrupted: stopped reading stdin after line 10; the 10 mutations acked are durable/)
    const records = jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout)
    expect(records.map((r) => r.id).sort()).toEqual(jsonLines<Ack>(out).map((a) => a.id).sort())
  })
})

describe('concurrent producers', () => {
  it('both succeed, share group commits, and keep offsets gap-free and ordered per partition', async () => {
    const count = 20_000
    // Both processes run from the start, and their input arrives in slices, alternately: they write at
    // the same time however busy the machine is.
    const start = (): { out: () => string; write: (text: string) => void; end: () => Promise<number | null> } => {
      const child = wal.spawn(['produce', '-n', 'shared', '--json'])
      let out = ''
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      child.stderr!.resume()
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
      return { out: () => out, write: (text) => child.stdin!.write(text), end: () => (child.stdin!.end(), closed) }
    }
    const a = start()
    const b = start()
    const slicesA = lines(count, 'a').split('\n').filter(Boolean)
    const slicesB = lines(count, 'b').split('\n').filter(Boolean)
    for (let at = 0; at < count; at += 2000) {
      a.write(slicesA.slice(at, at + 2000).join('\n') + '\n')
      b.write(slicesB.slice(at, at + 2000).join('\n') + '\n')
      // Count whole lines only: output arrives in chunks that may end mid-line.
      const acked = (text: string): number => text.split('\n').length - 1
      // Generous: under a full test run (brokers and Cassandra busy on the same disk) each group commit's
      // fsync can take a hundred times its idle time; this test is about order and gaps, not speed.
      await waitFor(() => acked(a.out()) > at && acked(b.out()) > at, { timeoutMs: 150_000 })
    }
    expect(await a.end()).toBe(0)
    expect(await b.end()).toBe(0)
    expect(jsonLines(a.out())).toHaveLength(count)
    expect(jsonLines(b.out())).toHaveLength(count)

    const records = jsonLines<Envelope>((await wal.run(['tail', '-n', 'shared', '--json'])).stdout)
    expect(records).toHaveLength(2 * count)
    const perPartition = new Map<number, Envelope[]>()
    for (const r of records) {
      const inPartition = perPartition.get(r.partition)
      if (inPartition === undefined) perPartition.set(r.partition, [r])
      else inPartition.push(r)
    }
    for (const inPartition of perPartition.values()) {
      expect(inPartition.map((r) => r.offset)).toEqual(inPartition.map((_, i) => i))
      // Each producer's mutations keep their input order within the partition.
      for (const producer of ['a', 'b']) {
        const seqs = inPartition.filter((r) => (r.payload as { producer: string }).producer === producer).map((r) => (r.payload as { seq: number }).seq)
        expect(seqs).toEqual([...seqs].sort((x, y) => x - y))
      }
    }
    // The two really wrote at the same time: their commits interleave in the log.
    const order = records.map((r) => (r.payload as { producer: string }).producer)
    const switches = order.filter((p, i) => i > 0 && p !== order[i - 1]).length
    expect(switches).toBeGreaterThanOrEqual(2)
    // Group commit: a commit stamps one append time on all its mutations; 10,000 mutations took far
    // fewer commits than mutations.
    const commits = new Set(records.map((r) => r.appendedAt)).size
    expect(commits).toBeLessThan(records.length / 20)
  }, 180_000)
})

describe('round trip', () => {
  it('tail --json fed to produce into another namespace reproduces keys, headers, payloads and timestamps', async () => {
    const input = [
      { key: 'user-1', payload: { name: 'Ada', tags: ['a', 'b'], nested: { n: 1.5, nil: null } }, headers: { source: 'crm', 'trace-id': 'abc' } },
      { key: 'user-2', payload: Buffer.from([0, 1, 2, 253, 254, 255]).toString('base64'), payloadEncoding: 'base64', headers: { ct: 'application/octet-stream' } },
      { key: 'user-1', payload: 'plain string', createdAt: '2020-02-02T02:02:02.020Z', notBefore: '2031-01-01T00:00:00.000Z' },
      { key: 'ünïcødé-🔑', payload: { emoji: '😀', quote: '"', newline: 'a\nb' }, idempotencyKey: 'idem-1' },
      { key: 'n', payload: 42 },
    ]
    expect((await wal.run(['produce', '-n', 'src'], { input: ndjson(input) })).code).toBe(0)
    const source = await wal.run(['tail', '-n', 'src', '--json'])
    const copied = await wal.run(['produce', '-n', 'dst', '--json'], { input: source.stdout })
    expect(copied.stderr).toBe('')
    expect(copied.code).toBe(0)
    const target = await wal.run(['tail', '-n', 'dst', '--json'])

    const strip = (r: Envelope & { namespace?: string; appendedAt?: string }): unknown => {
      const { appendedAt: _a, namespace: _n, ...rest } = r
      return rest
    }
    const from = jsonLines<Envelope>(source.stdout)
    const to = jsonLines<Envelope & { namespace: string }>(target.stdout)
    expect(to.every((r) => r.namespace === 'dst')).toBe(true)
    expect(to.map(strip)).toEqual(from.map(strip))
    expect(to[1]!.payloadEncoding).toBe('base64')
    expect(Buffer.from(to[1]!.payload as string, 'base64')).toEqual(Buffer.from([0, 1, 2, 253, 254, 255]))
    expect(to[2]!.createdAt).toBe('2020-02-02T02:02:02.020Z')
  })
})
