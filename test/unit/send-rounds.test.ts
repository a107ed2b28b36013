import { describe, expect, it } from 'vitest'

import { SendRounds } from '../../src/lib/targets/send-rounds.js'

describe('send rounds', () => {
  it('sends what arrives during a send in the next round, at most maxRound at a time, and rejects only the items that failed', async () => {
    const rounds: number[][] = []
    const sender = new SendRounds<number>({
      maxRound: 3,
      send: async (items) => {
        rounds.push(items)
        await new Promise((resolve) => setTimeout(resolve, 5))
        return items.map((n) => (n === 4 ? new Error('refused') : undefined))
      },
      classify: (error) => new Error(`classified: ${(error as Error).message}`),
    })
    const outcomes = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => sender.push(n)))
    expect(rounds).toEqual([[1], [2, 3, 4], [5]])
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? 'ok' : (o.reason as Error).message))).toEqual(['ok', 'ok', 'ok', 'classified: refused', 'ok'])
  })

  it('rejects a whole round when its send fails, and goes on with the next', async () => {
    let calls = 0
    const sender = new SendRounds<string>({
      maxRound: 10,
      send: async () => {
        calls++
        if (calls === 1) throw new Error('down')
      },
      classify: (error) => error,
    })
    await expect(sender.push('a')).rejects.toThrow('down')
    await expect(sender.push('b')).resolves.toBeUndefined()
  })

  it('sends a group of items in order across rounds, and rejects the group with its first failure once every round answered', async () => {
    const rounds: number[][] = []
    const sender = new SendRounds<number>({
      maxRound: 3,
      send: async (items) => {
        rounds.push(items)
        await new Promise((resolve) => setTimeout(resolve, 5))
        return items.map((n) => (n === 5 || n === 7 ? new Error(`refused ${n}`) : undefined))
      },
      classify: (error) => new Error(`classified: ${(error as Error).message}`),
    })
    const single = sender.push(0)
    const group = sender.pushAll([1, 2, 3, 4, 5, 6, 7])
    const ok = sender.pushAll([8, 9])
    await expect(group).rejects.toThrow('classified: refused 5')
    await expect(single).resolves.toBeUndefined()
    await expect(ok).resolves.toBeUndefined()
    await expect(sender.pushAll([])).resolves.toBeUndefined()
    expect(rounds).toEqual([[0], [1, 2, 3], [4, 5, 6], [7, 8, 9]])
  })
})
