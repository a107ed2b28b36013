import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ndjson, waitFor, type Envelope, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function puts(round: number, keys: number): Array<Record<string, unknown>> {
  return Array.from({ length: keys }, (_, k) => ({ key: `k${k}`, payload: { op: 'put', table: 't', key: { id: `k${k}` }, item: { id: `k${k}`, round } } }))
}

describe('crashes', () => {
  it('loses nothing when consumers are killed with SIGKILL at random points while producers write', async () => {
    const keys = 40
    let round = 0
    let producing = true
    const producer = (async () => {
      while (producing) {
        await wal.run(['produce'], { input: ndjson(puts(round++, keys)) })
      }
    })()
    // At least 5 kills, and on until the producers have written several rounds among them: on a busy
    // machine one round can take longer than all 5 kills.
    for (let kill = 0; kill < 5 || round <= 3; kill++) {
      if (kill >= 200) throw new Error(`the producer finished only ${round} rounds during ${kill} consumer kills`)
      const consumer = wal.spawn(['consume', '--lease-ttl', '1s', '--concurrency', '8'])
      consumer.stdout!.resume()
      consumer.stderr!.resume()
      const closed = new Promise((resolve) => consumer.on('close', resolve))
      await sleep(300 + Math.floor(Math.random() * 700))
      consumer.kill('SIGKILL')
      await closed
    }
    producing = false
    await producer
    expect(round).toBeGreaterThan(3)
    const finish = await wal.run(['consume', '--until-idle', '--lease-ttl', '1s'])
    expect(finish.code).toBe(0)

    // The kv store holds, for every key, the last mutation the log has for it.
    const last = new Map<string, unknown>()
    for (const r of jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout)) last.set(r.key, (r.payload as { item: unknown }).item)
    const stored = new Map(kvItems(wal.stateDir).map((row) => [JSON.parse(row.pk)[0][1] as string, JSON.parse(row.item!) as unknown]))
    expect(stored.size).toBe(keys)
    for (const [key, item] of last) expect(stored.get(key), key).toEqual(item)
    expect(stored.get('k0')).toEqual({ id: 'k0', round: round - 1 })
  })
})

describe('shards', () => {
  interface Shown {
    consumers: Array<{ target: string; leases: Array<{ partition: number; owner: string }> }>
  }

  async function owners(): Promise<Map<number, string>> {
    const shown = JSON.parse((await wal.run(['ns', 'show', '--json'])).stdout) as Shown
    return new Map(shown.consumers[0]!.leases.map((l) => [l.partition, l.owner]))
  }

  it('spreads partitions over --shard auto consumers, never two at once, and moves a killed one\'s partitions', async () => {
    await wal.run(['produce'], { input: ndjson(puts(0, 20)) })
    // Every change of either consumer's partitions, in the order they arrived.
    const timeline: Array<{ who: string; partitions: number[] }> = []
    const start = (who: string): { child: ReturnType<Sandbox['spawn']>; sets: number[][]; closed: Promise<unknown> } => {
      const child = wal.spawn(['consume', '--shard', 'auto', '--lease-ttl', '1500ms', '--json'])
      const sets: number[][] = []
      let buffer = ''
      child.stdout!.resume()
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        buffer += d
        const lines = buffer.split('\n')
        buffer = lines.pop()!
        for (const line of lines) {
          const event = JSON.parse(line) as { event: string; partitions?: number[] }
          if (event.event === 'partitions') {
            sets.push(event.partitions!)
            timeline.push({ who, partitions: event.partitions! })
          }
        }
      })
      return { child, sets, closed: new Promise((resolve) => child.on('close', resolve)) }
    }
    const a = start('a')
    await waitFor(() => a.sets.length > 0)
    const b = start('b')
    // Both end up with half of the 8 partitions, disjoint.
    await waitFor(async () => {
      const o = await owners()
      return o.size === 8 && new Set(o.values()).size === 2
    })
    await waitFor(() => a.sets.at(-1)?.length === 4 && b.sets.at(-1)?.length === 4)
    const lastA = a.sets.at(-1)!
    const lastB = b.sets.at(-1)!
    expect(lastA.filter((p) => lastB.includes(p))).toEqual([])
    expect([...lastA, ...lastB].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7])

    // At no point did the two hold a partition at the same time.
    const current = new Map<string, number[]>()
    for (const change of timeline) {
      current.set(change.who, change.partitions)
      const [x = [], y = []] = [current.get('a'), current.get('b')]
      expect(x.filter((p) => y.includes(p)), JSON.stringify(timeline)).toEqual([])
    }

    // b dies without a word: after its leases lapse, a holds everything.
    b.child.kill('SIGKILL')
    await b.closed
    await waitFor(() => a.sets.at(-1)?.length === 8, { timeoutMs: 15_000 })
    const o = await owners()
    expect(new Set(o.values()).size).toBe(1)
    a.child.kill('SIGTERM')
    expect(await a.closed).toBe(0)
  })
})
