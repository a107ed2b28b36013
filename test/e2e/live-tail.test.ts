import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { openTerminal, type Terminal } from '../helpers/tmux.js'
import { WAL_COMMAND, jsonLines, makeSandbox, ndjson, waitFor, type Envelope, type Sandbox } from '../helpers/wal.js'

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

/** The text line of `wal tail`, written out here from an envelope, independently of the code under test. */
function textLine(e: Envelope): string {
  const headers = Object.entries(e.headers)
    .map(([k, v]) => ` ${k}=${JSON.stringify(v)}`)
    .join('')
  return `${e.appendedAt} ${e.partition}:${e.offset} key=${JSON.stringify(e.key)}${headers} ${JSON.stringify(e.payload)}\n`
}

/** Runs `wal tail --follow …` with stdout piped until it printed `lines` lines, then interrupts it. */
async function followPiped(args: readonly string[], lines: number): Promise<{ stdout: string; code: number | null }> {
  const child = wal.spawn(['tail', '--follow', '--from', 'beginning', ...args])
  let stdout = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  try {
    await waitFor(() => stdout.split('\n').length > lines)
  } finally {
    child.kill('SIGINT')
  }
  return { stdout, code: await closed }
}

describe('wal tail --follow when piped', () => {
  beforeEach(async () => {
    const input = ndjson([
      { key: 'user-1', payload: { op: 'put', n: 1 }, headers: { source: 'billing' } },
      { key: 'user-2', payload: { op: 'delete', n: 2 } },
      { key: 'user-3', payload: { n: 3 } },
    ])
    expect((await wal.run(['produce'], { input })).code).toBe(0)
  })

  it('prints the same text lines as a bounded tail, byte for byte, and no terminal codes', async () => {
    const envelopes = jsonLines<Envelope>((await wal.run(['tail', '--json'])).stdout)
    const expected = envelopes.map(textLine).join('')
    expect((await wal.run(['tail'])).stdout).toBe(expected)
    const followed = await followPiped([], 3)
    expect(followed.stdout).toBe(expected)
    expect(followed.stdout).not.toContain('\u001B')
    expect(followed.code).toBe(130)
  })

  it('prints the same envelopes with --json, byte for byte', async () => {
    const bounded = (await wal.run(['tail', '--json'])).stdout
    const followed = await followPiped(['--json'], 3)
    expect(followed.stdout).toBe(bounded)
  })
})

describe('wal tail --follow on a terminal (tmux)', () => {
  // tail needs the log to exist: one mutation before the view starts (at the end, so it is not shown).
  beforeEach(async () => {
    expect((await wal.run(['produce', '-k', 'seed', '-p', '{}'])).code).toBe(0)
  })
  function start(args: readonly string[] = []): Terminal {
    terminal = openTerminal({ name: 'tail', command: [...WAL_COMMAND, 'tail', '--follow', ...args], env: wal.env, cwd: wal.cwd, columns: 120, rows: 40 })
    return terminal
  }
  const produce = async (key: string, payload: unknown): Promise<void> => {
    expect((await wal.run(['produce', '-k', key, '-p', JSON.stringify(payload)])).code).toBe(0)
  }

  it('shows new mutations, filters them, details the selected one, and quits on q', async () => {
    const t = start()
    await t.waitForScreen('default  seen 0  shown 0')
    await produce('user-1', { first: true })
    await produce('user-2', { second: true })
    await t.waitForScreen('seen 2  shown 2')
    expect(t.screen()).toMatch(/^\S+Z \d+:0 key="user-1" \{"first":true\}$/m)
    expect(t.screen()).toMatch(/^\S+Z \d+:\d+ key="user-2" \{"second":true\}$/m)

    t.keys('/')
    await t.waitForScreen('filter (key=K')
    t.keys('key=user-9', { literal: true })
    await t.waitForScreen('): key=user-9')
    t.keys('Enter')
    await t.waitForScreen('filter: key=user-9')
    await produce('user-8', { hidden: true })
    await produce('user-9', { shown: true })
    await t.waitForScreen('seen 4  shown 3')
    expect(t.screen()).toContain('key="user-9" {"shown":true}')
    expect(t.screen()).not.toContain('{"hidden":true}')

    t.keys('Up')
    await t.waitForScreen(/selected › .*key="user-9"/)
    t.keys('Enter')
    // The failure history comes from the same lookup as wal explain: not consumed yet.
    const detail = await t.waitForScreen('target kv: pending')
    expect(detail).toContain('payload: {"shown":true}')
    expect(detail).toContain('failures: []')

    t.keys('q')
    await t.waitForScreen('EXIT=0')
  })

  it('details a replayed mutation with the failures in its envelope and its attempts per target', async () => {
    // The api target can never be reached (port 9: fetch refuses it, a fatal failure): the mutation is dead-lettered, then replayed while the view runs.
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { api: { type: 'http', url: 'http://127.0.0.1:9/x', retry: { maxAttempts: 1 } } } } } }))
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'order-1', '-p', '{"total":5}'])).code).toBe(0)
    expect((await wal.run(['consume', '-n', 'orders', '--until-idle'])).code).toBe(8) // dead-lettered during the run
    const t = start(['-n', 'orders'])
    await t.waitForScreen('orders  seen 0')
    expect((await wal.run(['dlq', 'replay', '-n', 'orders'])).code).toBe(0)
    await t.waitForScreen(/key="order-1" wal-replays="1" \{"total":5\}/)
    t.keys('Up')
    await t.waitForScreen(/selected › .*key="order-1"/)
    t.keys('Enter')
    const detail = await t.waitForScreen(/dead-lettered \(attempt 1\) fatal HTTP_PORT_BLOCKED: /)
    expect(detail).toMatch(/failures: \[\{"at":"[^"]+","target":"api","errorClass":"fatal"/)
    expect(detail).toMatch(/target api: \w+/)
    t.keys('q')
    await t.waitForScreen('EXIT=0')
  })

  it('keeps keys typed before the view is ready: a filter typed with its Enter at once is applied', async () => {
    const t = start()
    // Typed straight away, while wal is still starting: they reach the view in one chunk.
    t.keys('/key=user-5', { literal: true })
    t.keys('Enter')
    await t.waitForScreen('filter: key=user-5')
    await produce('user-4', { hidden: true })
    await produce('user-5', { shown: true })
    await t.waitForScreen('seen 2  shown 1')
    expect(t.screen()).toContain('key="user-5" {"shown":true}')
    expect(t.screen()).not.toContain('{"hidden":true}')
    t.keys('q')
    await t.waitForScreen('EXIT=0')
  })

  it('ends as an interrupted tail (exit 130) on ctrl-c', async () => {
    const t = start()
    await t.waitForScreen('seen 0')
    t.keys('C-c')
    await t.waitForScreen('EXIT=130')
  })

  it('ends as an interrupted tail (exit 130) on SIGTERM from outside', async () => {
    const t = start()
    await t.waitForScreen('seen 0')
    // This terminal's wal: the child of its shell (never another test's process).
    const pid = Number(spawnSync('pgrep', ['-P', String(t.panePid())], { encoding: 'utf8' }).stdout.trim().split('\n')[0])
    expect(pid).toBeGreaterThan(0)
    process.kill(pid, 'SIGTERM')
    await t.waitForScreen('EXIT=130')
  })

  it('prints plain envelopes with --json, even on a terminal', async () => {
    const t = start(['--json', '--from', 'beginning'])
    await t.waitForScreen('"key":"seed"')
    await produce('user-1', { n: 1 })
    const screen = await t.waitForScreen('"key":"user-1"')
    expect(screen).toMatch(/^\{"v":1,"id":"\w+","namespace":"default","key":"user-1"/m)
    expect(screen).not.toContain('seen 1')
  })
})
