import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { openTerminal, type Terminal } from '../helpers/tmux.js'
import { WAL_SHELL, makeSandbox, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let terminal: Terminal | undefined
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => {
  terminal?.kill()
  terminal = undefined
  wal.cleanup()
})

/** A little over 1 MiB of NDJSON: the size from which produce shows a bar. */
function bigInput(lines = 12_000): string {
  let text = ''
  for (let i = 0; i < lines; i++) text += `${JSON.stringify({ key: `k${i}`, payload: { n: i, pad: 'x'.repeat(50) } })}\n`
  expect(text.length).toBeGreaterThan(1024 * 1024)
  return text
}

/** Runs a shell command line in tmux (stdout redirected by the line itself) and waits for its exit. */
async function inTerminal(line: string): Promise<string> {
  terminal = openTerminal({ name: 'progress', command: ['sh', '-c', line], env: wal.env, cwd: wal.cwd, columns: 120, rows: 12 })
  return terminal.waitForScreen(/EXIT=\d+/, 30_000)
}

describe('progress bars', () => {
  it('produce from a large file shows a bar with rate on a terminal, and the acks go to stdout alone', async () => {
    writeFileSync(join(wal.cwd, 'big.ndjson'), bigInput())
    const screen = await inTerminal(`${WAL_SHELL} produce < big.ndjson > acks.txt`)
    expect(screen).toContain('EXIT=0')
    expect(screen).toMatch(/^produce █{30} 100% {2}1\.\d MiB\/1\.\d MiB {2}[\d.]+ (KiB|MiB)\/s {2}done$/m)
    const acks = readFileSync(join(wal.cwd, 'acks.txt'), 'utf8').trimEnd().split('\n')
    expect(acks).toHaveLength(12_000)
    expect(acks.every((l) => /^line=\d+ id=\w+ partition=\d+ offset=\d+ durable=true$/.test(l))).toBe(true)
  })

  it('produce from a large file prints nothing but the acks when piped', async () => {
    const result = await wal.run(['produce'], { input: bigInput() })
    expect(result.code).toBe(0)
    expect(result.stderr).toBe('')
    expect(result.stdout.trimEnd().split('\n')).toHaveLength(12_000)
  })

  it('dlq replay shows a bar over the matching entries on a terminal, then its plan', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { api: { type: 'http', url: 'http://127.0.0.1:9/x', retry: { maxAttempts: 1 } } } } } }))
    const input = Array.from({ length: 5 }, (_, i) => JSON.stringify({ key: `k${i}`, payload: { n: i } })).join('\n')
    expect((await wal.run(['produce', '-n', 'orders'], { input })).code).toBe(0)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(8) // dead-lettered during the run
    const screen = await inTerminal(`${WAL_SHELL} dlq replay -n orders`)
    expect(screen).toContain('EXIT=0')
    expect(screen).toMatch(/^replay █{30} 100% {2}5\/5 entries {2}\d+\/s {2}done$/m)
    expect(screen).toContain('replayed 5 entries into "orders", parked 0')
  })
})
