import { describe, expect, it } from 'vitest'

import { PartitionProgress } from '../../src/lib/pipeline/partition-progress.js'

describe('the offset a consumer commits in a partition', () => {
  it('is the lowest offset read and not done, whatever order mutations finish in', () => {
    const progress = new PartitionProgress()
    progress.start(0, 10)
    for (let offset = 10; offset < 16; offset++) progress.read(0, offset)
    expect(progress.toCommit()).toEqual(new Map([[0, 10]]))
    // Done out of order: 12 and 14 before 10.
    progress.done(0, 12)
    progress.done(0, 14)
    expect(progress.toCommit()).toEqual(new Map([[0, 10]]))
    progress.done(0, 10)
    expect(progress.toCommit()).toEqual(new Map([[0, 11]]))
    progress.done(0, 11)
    // 12 was done already: the commit passes it and stops at 13, still in flight.
    expect(progress.toCommit()).toEqual(new Map([[0, 13]]))
    expect(progress.busy(0)).toBe(true)
    progress.done(0, 13)
    progress.done(0, 15)
    expect(progress.toCommit()).toEqual(new Map([[0, 16]]))
    expect(progress.busy(0)).toBe(false)
  })

  it('does not move for an offset done twice or never read', () => {
    const progress = new PartitionProgress()
    progress.start(3, 0)
    progress.read(3, 0)
    progress.read(3, 5) // a gap, as Kafka's transaction markers leave
    progress.done(3, 2)
    progress.done(3, 0)
    progress.done(3, 0)
    expect(progress.toCommit()).toEqual(new Map([[3, 5]]))
    progress.done(3, 5)
    expect(progress.toCommit()).toEqual(new Map([[3, 6]]))
  })

  it('never passes an offset read after a later one', () => {
    const progress = new PartitionProgress()
    progress.start(0, 0)
    progress.read(0, 4)
    progress.read(0, 2)
    progress.read(0, 4)
    expect(progress.toCommit()).toEqual(new Map([[0, 2]]))
    progress.done(0, 4)
    expect(progress.toCommit()).toEqual(new Map([[0, 2]]))
    progress.done(0, 2)
    expect(progress.toCommit()).toEqual(new Map([[0, 5]]))
  })

  it('names only partitions whose offset moved since the last commit, and forgets a partition given up', () => {
    const progress = new PartitionProgress()
    progress.start(0, 0)
    progress.start(1, 7)
    expect(progress.toCommit()).toEqual(new Map([[0, 0], [1, 7]]))
    progress.committedAt(0, 0)
    progress.committedAt(1, 7)
    expect(progress.toCommit()).toEqual(new Map())
    progress.read(1, 7)
    progress.done(1, 7)
    expect(progress.toCommit()).toEqual(new Map([[1, 8]]))
    progress.forget(1)
    expect(progress.toCommit()).toEqual(new Map())
    expect(progress.position(1)).toBe(0)
  })

  it('keeps up over many pages done in order, and with one offset held back by a slow key', () => {
    const progress = new PartitionProgress()
    progress.start(0, 0)
    let next = 0
    for (let page = 0; page < 50; page++) {
      const first = next
      for (let i = 0; i < 1000; i++) progress.read(0, next++)
      // Offset 0 stays in flight (a key being retried); the rest of each page is done in order.
      for (let offset = first; offset < next; offset++) if (offset !== 0) progress.done(0, offset)
      expect(progress.toCommit().get(0)).toBe(0)
    }
    progress.done(0, 0)
    expect(progress.toCommit().get(0)).toBe(50_000)
    expect(progress.position(0)).toBe(50_000)
  })
})
