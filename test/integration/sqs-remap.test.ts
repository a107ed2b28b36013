// An SQS namespace whose shard count changes (against ElasticMQ): ns init refuses to create the new
// shard queues (exit 3, saying what order is lost and how to drain first) unless --allow-remap, which
// creates them and reports the change, and the queues no consumer reads any more.
import { ListQueuesCommand } from '@aws-sdk/client-sqs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { deleteQueues, sqsNamespace, testSqs, writeSqsConfig } from '../helpers/sqs-namespace.js'
import { makeSandbox, ndjson, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
const prefixes: string[] = []
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  wal.cleanup()
  await deleteQueues(prefixes.splice(0))
})

async function queueNames(prefix: string): Promise<string[]> {
  const { QueueUrls = [] } = await testSqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix }))
  return QueueUrls.map((url) => url.slice(url.lastIndexOf('/') + 1)).sort()
}

interface InitPart {
  role: string
  name: string
  status: string
  warning?: string
  remapped?: { from: number; to: number }
}

describe('changing the shard count of an SQS namespace', () => {
  it('2 → 3: refused without --allow-remap (nothing created); with it, the new queue is created and the change reported', async () => {
    const queue = await sqsNamespace(wal, { shards: 2 })
    prefixes.push(queue)
    expect((await wal.run(['produce', '-n', 'orders'], { input: ndjson([1, 2, 3, 4].map((i) => ({ key: `k${i}`, payload: i }))) })).code).toBe(0)
    writeSqsConfig(wal, queue, { shards: 3 })

    const refused = await wal.run(['ns', 'init', 'orders'])
    expect(refused.code).toBe(3)
    expect(refused.stderr).toContain(
      `wal: namespace "orders": the config asks for 3 shard queues, queue ${queue} (2 shard queues) has 2: changing it re-maps keys to other shard queues, so a key's mutations written before the change may be applied after ones written after it (per-key order across the change is lost)\n`,
    )
    expect(refused.stderr).toContain('hint: to keep per-key order, drain first: stop the producers of "orders", run wal consume -n orders --until-idle')
    expect(refused.stderr).toContain('hint: or keep the current count: set shards: 2 for namespace "orders"')
    expect(await queueNames(queue)).toEqual([`${queue}-0`, `${queue}-1`, `${queue}-dlq`])

    const allowed = await wal.run(['ns', 'init', 'orders', '--allow-remap', '--json'])
    expect(allowed.code).toBe(0)
    const parts = (JSON.parse(allowed.stdout) as { parts: InitPart[] }).parts
    expect(parts.find((p) => p.name === `${queue}-2`)).toMatchObject({ status: 'created' })
    expect(parts.find((p) => p.remapped)).toMatchObject({ remapped: { from: 2, to: 3 }, warning: expect.stringMatching(/now has 3 shard queues \(was 2\): keys were re-mapped/) })
    expect(await queueNames(queue)).toEqual([`${queue}-0`, `${queue}-1`, `${queue}-2`, `${queue}-dlq`])
    // Done: running it again is quiet.
    const again = await wal.run(['ns', 'init', 'orders'])
    expect(again.code).toBe(0)
    expect(again.stdout).not.toMatch(/re-mapped/)
  })

  it('1 → 2: the old queue, which no consumer reads any more, is named with what waits in it', async () => {
    const queue = await sqsNamespace(wal, { shards: 1 })
    prefixes.push(queue)
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])).code).toBe(0)
    writeSqsConfig(wal, queue, { shards: 2 })
    expect((await wal.run(['ns', 'init', 'orders'])).code).toBe(3)
    const allowed = await wal.run(['ns', 'init', 'orders', '--allow-remap'])
    expect(allowed.code).toBe(0)
    expect(allowed.stdout).toMatch(new RegExp(`warning: ${queue} is no longer a shard queue of the config, and no consumer reads it: about \\d+ messages wait there; set shards: 1 and drain it`))
  })
})
