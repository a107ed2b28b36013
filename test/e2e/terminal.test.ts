// Data reaches the operator's terminal through every command: keys, headers, payloads quoted in error
// messages, names in a config. None of it may drive the terminal; --json stays exact.
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { killDaemons } from '../helpers/daemon.js'
import { WAL_SHELL, jsonLines, makeSandbox, ndjson, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let server: Server | undefined
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  server?.closeAllConnections()
  server?.close()
  server = undefined
  await killDaemons()
  wal.cleanup()
})

const ESC = '\u001b'
const C1_CSI = '\u009b'
/** Retitles the window, clears the screen, sets red, hides the cursor; and a right-to-left override. */
const HOSTILE = `${ESC}]0;pwned${String.fromCharCode(7)}${ESC}[2J${ESC}[31m${C1_CSI}?25l\u202e`

/** An HTTP endpoint that refuses every request, quoting what it was sent in the answer (as many APIs do). */
async function echoingRefuser(): Promise<string> {
  server = createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8').on('data', (d: string) => (body += d))
    request.on('end', () => {
      response.writeHead(422, { 'content-type': 'text/plain' })
      let quoted = body
      try {
        quoted = String((JSON.parse(body) as { note?: unknown }).note ?? body)
      } catch {
        // not JSON: quoted as it came
      }
      response.end(`cannot take ${quoted}`)
    })
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}/`
}

function expectNoControl(what: string, text: string): void {
  // eslint-disable-next-line no-control-regex -- looking for control characters is the point
  const raw = [...text].filter((c) => /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/.test(c))
  expect(raw, `${what} printed raw control characters: ${JSON.stringify(text.slice(0, 400))}`).toEqual([])
}

describe('text output', () => {
  // Some thirty commands, each a process of its own: a generous deadline for a busy machine.
  it('shows control characters in keys, headers, payloads, error messages and config names escaped, in every command', async () => {
    const url = await echoingRefuser()
    const target = "api"
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({
        namespaces: { orders: { description: `desc ${HOSTILE}`, partitions: 2, targets: { [target]: { type: 'http', url }, store: { type: 'kv' } }, retry: { maxAttempts: 1 } } },
        daemon: { port: 0 },
      }),
    )
    const key = `key${HOSTILE}`
    const produced = await wal.run(['produce', '-n', 'orders'], {
      input: ndjson([
        { key, payload: { note: HOSTILE } },
        { key: `headers${ESC}`, headers: { [`h${ESC}[1m`]: `v${HOSTILE}` }, payload: 2 },
        { key: `bad${HOSTILE}`, payload: 1, target: `nope${HOSTILE}` },
      ]),
    })
    expectNoControl('produce', produced.stdout + produced.stderr)
    expect(produced.stderr).toContain('\\u001b')
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expectNoControl('consume', consumed.stdout + consumed.stderr)
    const id = (jsonLines<{ id: string }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)[0]!).id

    const commands: string[][] = [
      ['tail', '-n', 'orders'],
      ['dlq', 'ls', '-n', 'orders'],
      ['dlq', 'stats', '-n', 'orders'],
      ['dlq', 'show', '-n', 'orders', id],
      ['dlq', 'audit', '-n', 'orders'],
      ['dlq', 'replay', '-n', 'orders', '--dry-run'],
      ['explain', id],
      ['explain', `${id.slice(0, -1)}${ESC}`],
      ['ns', 'ls'],
      ['ns', 'show', 'orders'],
      ['ns', 'show', `x${ESC}[2J`],
      ['config', 'show'],
      ['config', 'validate'],
      ['top'],
      ['produce', '-n', 'orders', '-k', key, '-p', `{"x":"${ESC}"}`],
      ['tail', '-n', `orders${ESC}`],
    ]
    for (const args of commands) {
      const result = await wal.run(args)
      expectNoControl(`wal ${args.join(' ')}`, result.stdout + result.stderr)
    }
    // The DLQ listing and stats name the error, escaped: what the refusing endpoint quoted.
    const stats = await wal.run(['dlq', 'stats', '-n', 'orders'])
    expect(stats.stdout).toContain('HTTP_422')
    expect(stats.stdout).toContain('\\u001b]0;pwned')
    expect((await wal.run(['dlq', 'ls', '-n', 'orders'])).stdout).toContain('key\\u001b]0;pwned\\u0007')

    // --json is exact: the key comes back as it went in.
    const listed = jsonLines<{ key: string }>((await wal.run(['tail', '-n', 'orders', '--json'])).stdout)
    expect(listed[0]!.key).toBe(key)
    const dlq = (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ key: string; message: string }> }).entries
    expect(dlq.filter((e) => e.key === key).map((e) => e.message).join("\n")).toContain(HOSTILE)

    // The daemon's status, as wal daemon status prints it.
    const started = await wal.run(['daemon', 'start', '--json'])
    expect(started.code, started.stderr).toBe(0)
    // A write over HTTP with a hostile key: the daemon's consumers dead-letter it, and log that.
    const daemonUrl = (JSON.parse(started.stdout) as { url: string }).url
    const token = readFileSync(join(wal.stateDir, 'daemon', 'token'), 'utf8').trim()
    const written = await fetch(`${daemonUrl}/v1/namespaces/orders/mutations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ key: `http${HOSTILE}`, payload: { note: HOSTILE } }),
    })
    expect(written.status).toBe(200)
    for (const args of [['daemon', 'status'], ['top'], ['daemon', 'reload'], ['daemon', 'logs'], ['daemon', 'stop'], ['daemon', 'logs']]) {
      const result = await wal.run(args)
      expectNoControl(`wal ${args.join(' ')}`, result.stdout + result.stderr)
    }
  }, 180_000)

  it('on a terminal, --json shows C1 controls and bidirectional overrides escaped; into a pipe it stays exact', async () => {
    const key = `k${C1_CSI}2J\u202ex\u0085`
    const payload = { note: `${C1_CSI}?25l\u2066` }
    expect((await wal.run(['produce', '-k', key, '-p', JSON.stringify(payload)])).code).toBe(0)
    // Through a pipe: byte for byte what was stored.
    const piped = await wal.run(['tail', '--json'])
    expect(piped.stdout).toContain(key)
    // On a terminal (script(1) gives the command one): the same JSON, those characters escaped.
    const onTerminal = spawnSync('script', ['-qec', `${WAL_SHELL} tail --json; ${WAL_SHELL} dlq ls --json`, '/dev/null'], { env: { ...process.env, ...wal.env }, cwd: wal.cwd, encoding: 'utf8' })
    expect(onTerminal.status, onTerminal.stderr).toBe(0)
    expect(onTerminal.stdout).not.toMatch(/[\u0080-\u009f\u202a-\u202e\u2066-\u2069]/)
    expect(onTerminal.stdout).toContain('\\u009b2J\\u202ex\\u0085')
    const line = onTerminal.stdout.split(/\r?\n/).find((l) => l.startsWith('{"v":'))!
    const record = JSON.parse(line) as { key: string; payload: unknown }
    expect(record.key).toBe(key)
    expect(record.payload).toEqual(payload)
  })
})
