/**
 * Every flag of every command that takes a value, found by walking the oclif manifest (so a new flag is
 * covered as soon as it exists), given bad values: each is a usage error (exit 2) that names the flag,
 * the value and the range, before any work, with no warning from Node's internals.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { makeSandbox, ROOT, type RunResult, type Sandbox } from '../helpers/wal.js'

interface ManifestFlag {
  name: string
  type: 'option' | 'boolean'
  description?: string
  helpValue?: string
  options?: string[]
}
const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {
  commands: Record<string, { flags: Record<string, ManifestFlag>; args: Record<string, { required?: boolean }> }>
}

/** Flags whose value is free text (a name, a key, JSON, an expression): only the empty value is wrong for every one. */
const FREE_TEXT = new Set(['config', 'namespace', 'key', 'payload', 'payload-file', 'header', 'idempotency-key', 'target', 'shard', 'where', 'to-namespace', 'to-target', 'host', 'format', 'context', 'to-offset', 'shift-by', 'reason']) // context: a name from the config (unknown names: WAL_CONTEXT_UNKNOWN)

/** Bad values by kind (the help value the flag builders of lib/cli/flags.ts give each kind). */
function badValues(flag: ManifestFlag): string[] {
  const zeroAllowed = /Range: (from 0ms|0 to)/.test(flag.description ?? '')
  switch (flag.helpValue) {
    case '<duration>':
      return ['', '-1s', '99999999999d', '12345678901234567890', '5parsecs', '1e3s', ...(zeroAllowed ? [] : ['0s'])]
    case '<count>':
      return ['', '-1', '99999999999999999999', '1.5', 'ten', '1e3', ...(zeroAllowed ? [] : ['0'])]
    case '<rate>':
      return ['', '0/s', '-1/s', '100', '99999999999999999999/s', '10/fortnight']
    case '<time>':
      return ['', 'yesterday', '99999999999d', '10000-01-01', '2026-02-30', '12345678901234567890']
    case '<position>':
      return ['', 'middle', '99999999999d', '99999999999999999999', '10000-01-01', '2026-02-30T10:00:00Z']
    default:
      if (flag.options) return ['', 'no-such-option']
      if (FREE_TEXT.has(flag.name)) return ['']
      throw new Error(`--${flag.name} takes a value of no known kind: build it with lib/cli/flags.ts, or list it as free text here`)
  }
}

const cases = Object.entries(manifest.commands).map(([id, command]) => ({
  // A stand-in for each required argument, so that only the flag is wrong.
  command: [...id.split(':'), ...Object.values(command.args).filter((a) => a.required).map(() => 'x')],
  flags: Object.values(command.flags).filter((f) => f.type === 'option'),
}))

let wal: Sandbox
beforeAll(() => {
  wal = makeSandbox()
})
afterAll(() => wal.cleanup())

/** Runs wal, killing it if it outlives the deadline (a bad value taken would start real work). */
async function run(args: string[]): Promise<RunResult> {
  const child = wal.spawn(args)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  child.stdin!.on('error', () => undefined)
  child.stdin!.end('')
  const timer = setTimeout(() => child.kill('SIGKILL'), 45_000)
  return new Promise((resolve) => child.on('close', (code, signal) => (clearTimeout(timer), resolve({ code, signal, stdout, stderr }))))
}

async function inBatches<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = []
  for (let i = 0; i < items.length; i += size) results.push(...(await Promise.all(items.slice(i, i + size).map(fn))))
  return results
}

describe('bad flag values, every command and flag from the manifest', () => {
  it('covers the commands and the kinds of value', () => {
    const kinds = new Set(cases.flatMap((c) => c.flags.map((f) => f.helpValue)))
    for (const kind of ['<duration>', '<count>', '<rate>', '<time>', '<position>']) expect(kinds).toContain(kind)
    expect(cases.length).toBeGreaterThan(20)
  })

  it.each(cases.map((c) => [c.command.filter((w) => w !== 'x').join(' '), c] as const))('wal %s: each bad value is exit 2 naming the flag, the value and the range', async (_name, c) => {
    const runs = c.flags.flatMap((flag) => badValues(flag).map((value) => ({ flag, value })))
    const results = await inBatches(runs, 4, async ({ flag, value }) => ({ flag, value, result: await run([...c.command, `--${flag.name}=${value}`]) }))
    for (const { flag, value, result } of results) {
      const what = `wal ${c.command.join(' ')} --${flag.name}=${value}`
      expect(result.code, `${what}\n${result.stderr}`).toBe(2)
      expect(result.stderr, what).toContain(`--${flag.name}`)
      if (flag.options) continue // oclif's own message for a value not among the options, which lists them
      expect(result.stderr, what).toContain(JSON.stringify(value))
      expect(result.stderr, what).toMatch(/expected /)
      expect(result.stderr, what).not.toMatch(/Warning|\bat .*\.js:\d+|WAL_INTERNAL/)
    }
  })
})

describe('the shape of a range error', () => {
  it('--json: one error object with code WAL_FLAG_RANGE and the flag, value and range as details', async () => {
    const result = await run(['consume', '--lease-ttl', '99999999999d', '--json'])
    expect(result.code).toBe(2)
    const { error } = JSON.parse(result.stderr) as { error: { code: string; message: string; exitCode: number; details: Record<string, string> } }
    expect(error).toMatchObject({ code: 'WAL_FLAG_RANGE', exitCode: 2, details: { flag: 'lease-ttl', value: '99999999999d', range: 'a duration from 1s to 10m' } })
    expect(error.message).toBe('--lease-ttl "99999999999d" is out of range: expected a duration from 1s to 10m')
  })

  it('text: the message and an example of a good value', async () => {
    const result = await run(['consume', '--idle-timeout', '99999999999d'])
    expect(result.stderr).toBe('wal: --idle-timeout "99999999999d" is out of range: expected a duration from 1s to 7d\n  hint: e.g. --idle-timeout 2m\n')
  })

  it('an empty key or argument is refused, not taken as "no filter"', async () => {
    const tail = await run(['tail', '-k', ''])
    expect(tail.code).toBe(2)
    expect(tail.stderr).toMatch(/^wal: --key "" is empty: expected a non-empty value\n/)
    const show = await run(['dlq', 'show', ''])
    expect(show.code).toBe(2)
    expect(show.stderr).toMatch(/^wal: argument entry "" is empty: expected a non-empty value\n/)
  })

  it('the range is in the help', async () => {
    const help = await run(['consume', '--help'])
    expect(help.stdout).toMatch(/--lease-ttl=<duration>[\s\S]*Range: from 1s to 10m\./)
  })
})
