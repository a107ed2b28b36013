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
})
