// --where fails closed: a typo, an unknown function or a bad regular expression is an error before
// anything is touched, never a filter that quietly selects everything (or nothing).
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { makeSandbox, ndjson, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

/** Dead-letters `count` non-operations (the zero-config kv target refuses them), one with a long key. */
async function deadLetters(count: number): Promise<void> {
  const input = Array.from({ length: count }, (_, i) => ({ key: i === 0 ? `${'a'.repeat(41)}!` : `k${i}`, payload: { i }, headers: { batch: i % 2 === 0 ? 'even' : 'odd' } }))
  expect((await wal.run(['produce'], { input: ndjson(input) })).code).toBe(0)
  // Exit 8: the run dead-lettered them (what these tests filter).
  expect((await wal.run(['consume', '--until-idle'])).code).toBe(8)
}

const count = async (): Promise<number> => (JSON.parse((await wal.run(['dlq', 'ls', '--json'])).stdout) as { entries: unknown[] }).entries.length

describe('wal dlq --where', () => {
  it('refuses an unknown field, listing the known ones, and purges nothing with it', async () => {
    await deadLetters(4)
    const typo = await wal.run(['dlq', 'purge', '--where', 'not (cdoe == "NOT_AN_OPERATION")', '--yes'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain('unknown field "cdoe"')
    expect(typo.stderr).toContain('did you mean "code"?')
    expect(typo.stderr).toMatch(/fields: id, key, target, errorClass, code, message/)
    expect(await count()).toBe(4)
    for (const command of ['ls', 'stats', 'replay', 'export']) {
      const result = await wal.run(['dlq', command, '--where', 'kye == "k1"', '--json'])
      expect(result.code, `dlq ${command}`).toBe(2)
      expect((JSON.parse(result.stderr) as { error: { code: string } }).error.code).toBe('WAL_WHERE_INVALID')
    }
  })

  it('refuses an unknown function and an invalid regular expression', async () => {
    await deadLetters(2)
    const fn = await wal.run(['dlq', 'ls', '--where', 'lenght(key) > 2'])
    expect(fn.code).toBe(2)
    expect(fn.stderr).toContain('unknown function lenght()')
    expect(fn.stderr).toContain('functions: abs')
    const regex = await wal.run(['dlq', 'ls', '--where', 'key ~= "(k"'])
    expect(regex.code).toBe(2)
    expect(regex.stderr).toContain('is not a regular expression')
    // Names that exist still work, headers and payload included.
    const ok = await wal.run(['dlq', 'ls', '--where', 'headers.batch == "odd" and payload.i >= 1 and key ~= "^k[0-9]$" and parked == false', '--json'])
    expect(ok.code, ok.stderr).toBe(0)
    expect((JSON.parse(ok.stdout) as { entries: Array<{ key: string }> }).entries.map((e) => e.key)).toEqual(['k1'])
  })

  it('runs a catastrophic regular expression on a long key in linear time', async () => {
    await deadLetters(2)
    // On a backtracking engine this takes minutes on the 42-character key; the deadline only catches a hang.
    const result = await wal.run(['dlq', 'ls', '--where', 'key ~= "^(a+)+$"', '--json'])
    expect(result.code, result.stderr).toBe(0)
    expect((JSON.parse(result.stdout) as { entries: unknown[] }).entries).toEqual([])
    const backref = await wal.run(['dlq', 'ls', '--where', 'key ~= "(a)\\\\1"'])
    expect(backref.code).toBe(2)
    expect(backref.stderr).toContain('linear time')
  }, 30_000)
})

describe('wal dlq purge', () => {
  it('says how many entries match, and refuses a filter that matches every entry even with --yes unless --all', async () => {
    await deadLetters(4)
    const all = await wal.run(['dlq', 'purge', '--where', 'code == "NOT_AN_OPERATION"', '--yes'])
    expect(all.code).toBe(2)
    expect(all.stderr).toContain('4 of 4 DLQ entries of namespace "default" match: every entry')
    expect(all.stderr).toContain('--all')
    expect(await count()).toBe(4)
    const some = await wal.run(['dlq', 'purge', '--where', 'headers.batch == "odd"', '--yes'])
    expect(some.code, some.stderr).toBe(0)
    expect(some.stderr).toContain('2 of 4 DLQ entries')
    expect(some.stdout).toContain('purged 2 entries (2 of 4 matched)')
    const meant = await wal.run(['dlq', 'purge', '--where', 'code == "NOT_AN_OPERATION"', '--yes', '--all', '--json'])
    expect(meant.code, meant.stderr).toBe(0)
    expect(JSON.parse(meant.stdout)).toEqual({ purged: 2, matched: 2, total: 2 })
    expect(await count()).toBe(0)
  })
})
