import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

import { loadKafkajs } from '../../src/lib/kafka/client.js'

describe('kafkajs as wal loads it', () => {
  it('groups a send by partition in one pass, keeping each partition in send order', async () => {
    await loadKafkajs()
    const require = createRequire(import.meta.url)
    const group = require('kafkajs/src/producer/groupMessagesPerPartition.js') as (args: object) => Record<number, Array<{ n: number; partition: number }>>
    const messages = Array.from({ length: 20_000 }, (_, n) => ({ n, partition: (n * 7) % 5 }))
    const grouped = group({ topic: 't', partitionMetadata: [{}], messages, partitioner: ({ message }: { message: { partition: number } }) => message.partition })
    expect(Object.keys(grouped).sort()).toEqual(['0', '1', '2', '3', '4'])
    for (const [partition, list] of Object.entries(grouped)) {
      expect(list.length).toBe(4000)
      expect(list.every((m) => m.partition === Number(partition))).toBe(true)
      expect(list.map((m) => m.n)).toEqual([...list.map((m) => m.n)].sort((a, b) => a - b))
    }
    expect(group({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({})
  })
})
