import { describe, expect, it } from 'vitest'

import { resolveConfig, validateConfig } from '../../src/lib/config/load.js'
import { ConfigError } from '../../src/lib/errors.js'
import { forwardingLoop, refuseForwardingLoop } from '../../src/lib/targets/forwarding-loop.js'

const resolve = (raw: Record<string, unknown>) =>
  resolveConfig(
    validateConfig(
      {
        clusters: {
          kafka: { main: { brokers: ['k1:9092', 'k2:9092'] }, alias: { brokers: ['K2:9092'] }, other: { brokers: ['x:9092'] } },
          sqs: { aws: { region: 'eu-west-1' }, same: { region: 'eu-west-1' }, us: { region: 'us-east-1' }, backup: { region: 'eu-west-1', profile: 'backup-account' } },
        },
        ...raw,
      },
      '/etc/w.json',
      {},
    ),
    '/etc/w.json',
    {},
  )
const loopOf = (raw: Record<string, unknown>, namespace: string, target?: string) => {
  const config = resolve(raw)
  const ns = config.namespaces.get(namespace)!
  return forwardingLoop(config, ns, target === undefined ? ns.targets : ns.targets.filter((t) => t.name === target))
}
const kafkaNs = (topic: string, targets: Record<string, unknown>) => ({ backend: 'kafka', cluster: 'main', topic, targets })
const toTopic = (topic: string, cluster = 'main') => ({ type: 'kafka', cluster, topic })

describe('forwarding loops', () => {
  it('finds a Kafka target writing into its own namespace\'s topic, also under another cluster name with a broker in common', () => {
    expect(loopOf({ namespaces: { a: kafkaNs('wal.a', { back: toTopic('wal.a') }) } }, 'a')).toEqual(['namespace "a" target "back" writes into topic "wal.a" of Kafka cluster "main"'])
    expect(loopOf({ namespaces: { a: kafkaNs('wal.a', { back: toTopic('wal.a', 'alias') }) } }, 'a')).not.toBeNull()
    expect(loopOf({ namespaces: { a: kafkaNs('wal.a', { away: toTopic('wal.a', 'other') }) } }, 'a')).toBeNull()
  })

  it('follows hops through other namespaces (A -> B -> A), and not past a hop that ends', () => {
    const ring = { namespaces: { a: kafkaNs('wal.a', { toB: toTopic('wal.b'), out: { type: 'file', path: '/tmp/o' } }), b: kafkaNs('wal.b', { toA: toTopic('wal.a') }) } }
    expect(loopOf(ring, 'a')).toEqual([
      'namespace "a" target "toB" writes into topic "wal.b" of Kafka cluster "main"',
      'namespace "b" reads it',
      'namespace "b" target "toA" writes into topic "wal.a" of Kafka cluster "main"',
    ])
    expect(loopOf(ring, 'b')).not.toBeNull()
    // Consuming only a's file target forwards nothing.
    expect(loopOf(ring, 'a', 'out')).toBeNull()
    const chain = { namespaces: { a: kafkaNs('wal.a', { toB: toTopic('wal.b') }), b: kafkaNs('wal.b', { toC: toTopic('wal.c') }), c: kafkaNs('wal.c', { out: { type: 'file', path: '/tmp/o' } }) } }
    expect(loopOf(chain, 'a')).toBeNull()
    // Two names for one topic: writing into the other name is writing into one's own log.
    expect(loopOf({ namespaces: { a: kafkaNs('wal.a', { toA2: toTopic('wal.a') }), a2: kafkaNs('wal.a', {}) } }, 'a')).not.toBeNull()
  })

  it('matches an SQS target to a namespace\'s shard queues, FIFO suffix and region included', () => {
    const ns = (targets: Record<string, unknown>) => ({ namespaces: { jobs: { backend: 'sqs', cluster: 'aws', queue: 'jobs', shards: 2, fifo: true, targets } } })
    expect(loopOf(ns({ back: { type: 'sqs', cluster: 'same', queue: 'jobs-1', fifo: true } }), 'jobs')).toEqual(['namespace "jobs" target "back" writes into queue "jobs-1.fifo"'])
    expect(loopOf(ns({ std: { type: 'sqs', cluster: 'aws', queue: 'jobs-1' } }), 'jobs')).toBeNull()
    expect(loopOf(ns({ far: { type: 'sqs', cluster: 'us', queue: 'jobs-1', fifo: true } }), 'jobs')).toBeNull()
    // Another account's queue of the same name (replication across accounts) is another queue.
    expect(loopOf(ns({ copy: { type: 'sqs', cluster: 'backup', queue: 'jobs-1', fifo: true } }), 'jobs')).toBeNull()
  })

  it('is refused as a configuration error (exit 3) that names the way round', () => {
    const config = resolve({ namespaces: { a: kafkaNs('wal.a', { back: toTopic('wal.a') }) } })
    let error: unknown
    try {
      refuseForwardingLoop(config, config.namespaces.get('a')!)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect(error).toMatchObject({ code: 'WAL_FORWARD_LOOP', exitCode: 3, message: expect.stringMatching(/^forwarding loop: namespace "a" target "back" writes into topic "wal\.a".*which namespace "a" reads/) })
  })
})
