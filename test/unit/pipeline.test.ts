import { describe, expect, it } from 'vitest'

import { CircuitBreaker } from '../../src/lib/pipeline/circuit-breaker.js'
import { KeyedExecutor } from '../../src/lib/pipeline/keyed-executor.js'
import { RateLimiter } from '../../src/lib/pipeline/rate-limiter.js'
import { backoffMs } from '../../src/lib/pipeline/retry.js'

const policy = { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 1000, multiplier: 2, jitter: 0 }

describe('backoff', () => {
  it('grows by the multiplier and stops at the maximum', () => {
    expect([1, 2, 3, 4, 5, 6].map((attempt) => backoffMs(policy, attempt))).toEqual([100, 200, 400, 800, 1000, 1000])
  })

  it('spreads by the jitter fraction, never past the maximum', () => {
    const jittered = { ...policy, jitter: 0.5 }
    expect(backoffMs(jittered, 1, 0)).toBe(50)
    expect(backoffMs(jittered, 1, 0.999999)).toBe(150)
    expect(backoffMs(jittered, 5, 0.999999)).toBe(1000)
  })
})

describe('keyed executor', () => {
  it('runs one task at a time per key, in order, and different keys in parallel up to the limit', async () => {
    const executor = new KeyedExecutor(3)
    const log: string[] = []
    let running = 0
    let most = 0
    const task = (key: string, i: number) => async () => {
      running++
      most = Math.max(most, running)
      log.push(`${key}${i}+`)
      await new Promise((resolve) => setTimeout(resolve, 5 + (i % 3)))
      log.push(`${key}${i}-`)
      running--
    }
    for (let i = 0; i < 5; i++) for (const key of ['a', 'b', 'c', 'd']) executor.push(key, task(key, i))
    expect(executor.size).toBe(20)
    await executor.idle()
    expect(most).toBe(3)
    for (const key of ['a', 'b', 'c', 'd']) {
      const own = log.filter((entry) => entry.startsWith(key))
      expect(own).toEqual([0, 1, 2, 3, 4].flatMap((i) => [`${key}${i}+`, `${key}${i}-`]))
    }
  })

  it('keeps going after a task fails', async () => {
    const executor = new KeyedExecutor(1)
    const done: number[] = []
    executor.push('k', async () => {
      throw new Error('boom')
    })
    executor.push('k', async () => {
      done.push(2)
    })
    await executor.idle()
    expect(done).toEqual([2])
  })

  it('runs a task holding several keys after every task given before it for any of them, and before those given after; crossing holders never deadlock', async () => {
    const executor = new KeyedExecutor(2)
    const log: string[] = []
    const task = (name: string) => async () => {
      log.push(`${name}+`)
      await new Promise((resolve) => setTimeout(resolve, 2))
      log.push(`${name}-`)
    }
    executor.push('a', task('a0'))
    executor.push('b', task('b0'))
    executor.pushAll(['t1', 'a', 'b', 'a'], task('t1'))
    executor.pushAll(['t2', 'b', 'a'], task('t2'))
    executor.push('a', task('a1'))
    executor.push('c', task('c0'))
    executor.push('b', task('b1'))
    expect(executor.size).toBe(7)
    await executor.idle()
    const at = (entry: string): number => log.indexOf(entry)
    expect(at('t1+')).toBeGreaterThan(Math.max(at('a0-'), at('b0-')))
    expect(at('t2+')).toBeGreaterThan(at('t1-'))
    expect(Math.min(at('a1+'), at('b1+'))).toBeGreaterThan(at('t2-'))
    // A key no holder needs goes on meanwhile.
    expect(at('c0+')).toBeLessThan(at('t1+'))
    expect(executor.has('a') || executor.has('t1')).toBe(false)
  })

  it("runs a task left to run again once its wait is over, still ahead of its key's later tasks, while other keys use the slot meanwhile", async () => {
    const executor = new KeyedExecutor(1)
    const log: string[] = []
    let release!: () => void
    const wait = new Promise<void>((resolve) => (release = resolve))
    let tries = 0
    const retrying = async (): Promise<void> => {
      log.push(`a0 try ${++tries}`)
      if (tries === 1) executor.again('a', wait, retrying)
    }
    executor.push('a', retrying)
    executor.push('a', async () => void log.push('a1'))
    executor.push('b', async () => {
      log.push('b0')
      release()
    })
    await executor.idle()
    expect(log).toEqual(['a0 try 1', 'b0', 'a0 try 2', 'a1'])
  })

  it('runs a task holding several keys again once its wait is over, holding all its keys meanwhile', async () => {
    const executor = new KeyedExecutor(2)
    const log: string[] = []
    let release!: () => void
    const wait = new Promise<void>((resolve) => (release = resolve))
    let tries = 0
    const joint = async (): Promise<void> => {
      log.push(`t try ${++tries}`)
      if (tries === 1) executor.again('t', wait, joint)
    }
    executor.pushAll(['t', 'a'], joint)
    executor.push('a', async () => void log.push('a1'))
    executor.push('c', async () => {
      log.push('c0')
      release()
    })
    await executor.idle()
    expect(log).toEqual(['t try 1', 'c0', 't try 2', 'a1'])
  })

  it('lets a running task wait for another one outside its keys without its slot, also with one slot, and keeps its keys meanwhile', async () => {
    const executor = new KeyedExecutor(1)
    const log: string[] = []
    let other!: () => void
    const otherDone = new Promise<void>((resolve) => (other = resolve))
    executor.push('k', async () => {
      log.push('waiter+')
      await executor.waitOutside(otherDone)
      log.push('waiter-')
    })
    executor.push('k', async () => {
      log.push('after')
    })
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect(executor.onlyWaitingOutside).toBe(true)
    executor.push('x', async () => {
      log.push('other')
      other()
    })
    expect(executor.onlyWaitingOutside).toBe(false)
    await executor.idle()
    expect(log).toEqual(['waiter+', 'other', 'waiter-', 'after'])
  })
})

describe('circuit breaker', () => {
  it('opens on failure, lets one probe through after the interval, and closes when it succeeds', async () => {
    const circuit = new CircuitBreaker({ probeIntervalMs: 30, maxProbeIntervalMs: 200 })
    expect(await circuit.allow()).toBe(false)
    circuit.failed(false)
    expect(circuit.state).toBe('open')
    const started = Date.now()
    const probe = await circuit.allow()
    expect(probe).toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
    // While the probe runs, others wait.
    let other = false
    const waiting = circuit.allow().then(() => (other = true))
    await new Promise((resolve) => setTimeout(resolve, 80))
    expect(other).toBe(false)
    circuit.succeeded(true)
    await waiting
    expect(circuit.state).toBe('closed')
    expect(circuit.opened).toBe(1)
  })

  it('waits twice as long after a failed probe', async () => {
    const circuit = new CircuitBreaker({ probeIntervalMs: 40, maxProbeIntervalMs: 1000 })
    circuit.failed(false)
    await circuit.allow()
    circuit.failed(true)
    const started = Date.now()
    await circuit.allow()
    expect(Date.now() - started).toBeGreaterThanOrEqual(70)
  })
})

describe('rate limiter', () => {
  it('lets through a second of burst, then the rate', async () => {
    const started = performance.now()
    const limiter = new RateLimiter(50)
    const nextTurn = () => new Promise<'waited'>((resolve) => setImmediate(() => resolve('waited')))
    // The burst is granted at once: before any timer or I/O turn of the event loop.
    const burst = Promise.all(Array.from({ length: 50 }, () => limiter.take())).then(() => 'granted' as const)
    expect(await Promise.race([burst, nextTurn()])).toBe('granted')
    // The 51st has to wait for a token.
    const next = limiter.take().then(() => 'granted' as const)
    expect(await Promise.race([next, nextTurn()])).toBe('waited')
    await next
    // Past the burst, tokens come at the rate however late the timers fire: 76 tokens are the 50 of
    // the burst and 26 earned at 50 per second, which takes 520 ms at least.
    for (let i = 0; i < 25; i++) await limiter.take()
    expect(performance.now() - started).toBeGreaterThanOrEqual(515)
  })
})

describe('partition progress', () => {
  it('commits up to the lowest offset still in flight, and only offsets that moved', async () => {
    const { PartitionProgress } = await import('../../src/lib/pipeline/partition-progress.js')
    const progress = new PartitionProgress()
    progress.start(0, 10)
    progress.start(1, 0)
    for (const offset of [10, 11, 12]) progress.read(0, offset)
    progress.done(0, 12)
    progress.done(0, 10)
    expect(progress.toCommit()).toEqual(new Map([[0, 11], [1, 0]]))
    progress.committedAt(0, 11)
    progress.committedAt(1, 0)
    expect(progress.toCommit()).toEqual(new Map())
    expect(progress.busy(0)).toBe(true)
    progress.done(0, 11)
    expect(progress.busy(0)).toBe(false)
    expect(progress.toCommit()).toEqual(new Map([[0, 13]]))
    expect(progress.position(0)).toBe(13)
    progress.forget(0)
    expect(progress.toCommit()).toEqual(new Map())
  })

  it('keeps the lowest offset in flight through thousands finishing in any order, and offsets read out of order', async () => {
    const { PartitionProgress } = await import('../../src/lib/pipeline/partition-progress.js')
    const progress = new PartitionProgress()
    progress.start(3, 1000)
    // Read in order, done in a scrambled order (the model: a sorted list of what is open).
    const open = new Set<number>()
    for (let offset = 1000; offset < 6000; offset++) {
      progress.read(3, offset)
      open.add(offset)
    }
    const order = [...open].sort((a, b) => ((a * 7919) % 5003) - ((b * 7919) % 5003))
    for (const [i, offset] of order.entries()) {
      progress.done(3, offset)
      progress.done(3, offset) // a second done changes nothing
      open.delete(offset)
      if (i % 97 === 0 || open.size < 3) {
        const lowest = open.size > 0 ? Math.min(...open) : 6000
        expect(progress.toCommit().get(3) ?? lowest).toBe(lowest)
        expect(progress.busy(3)).toBe(open.size > 0)
        progress.committedAt(3, lowest)
      }
      // New reads keep coming while old ones finish, wrapping around the ring.
      if (i === 2500) {
        for (let offset = 6000; offset < 6100; offset++) {
          progress.read(3, offset)
          open.add(offset)
        }
      }
    }
    expect(progress.toCommit().get(3)).toBe(6000)
    // An offset read again below the highest read (a page read over) is in flight once.
    progress.read(3, 6050)
    progress.read(3, 6040)
    for (let offset = 6000; offset < 6100; offset++) if (offset !== 6040 && offset !== 6050) progress.done(3, offset)
    expect(progress.toCommit().get(3)).toBe(6040)
    progress.done(3, 6040)
    expect(progress.toCommit().get(3)).toBe(6050)
    progress.done(3, 6050)
    expect(progress.busy(3)).toBe(false)
  })
})
