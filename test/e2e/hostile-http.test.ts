import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { scanObjectField } from '../../src/lib/envelope/json-text.js'
import { authHeaders, killDaemons, startForegroundDaemon } from '../helpers/daemon.js'
import { corpusInput, hostileCorpus } from '../helpers/hostile-corpus.js'
import { makeSandbox, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 4, targets: { store: { type: 'kv' } } } }, daemon: { port: 0, leaseTtlMs: 1000, drainTimeoutMs: 5000 } }))
})
afterEach(async () => {
  await killDaemons()
  wal.cleanup()
})

async function send(url: string, body: Buffer, contentType: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', body, headers: { 'content-type': contentType, ...authHeaders(url) } })
  return { status: response.status, body: JSON.parse(await response.text()) as Record<string, unknown> }
}

describe('a hostile corpus through the HTTP API', () => {
  it('answers only 200 and 400: each good envelope durable, each bad one refused with why, and the daemon keeps serving', async () => {
    const daemon = await startForegroundDaemon(wal)
    const endpoint = `${daemon.url}/v1/namespaces/orders/mutations`
    const { numbered } = corpusInput(hostileCorpus(1000, 1515))
    const statuses = new Map<number, number>()
    // A byte order mark at the start of a body is ignored (as at the start of produce's stdin), so the
    // corpus's BOM line is a good body on its own.
    let bomBodies = 0
    for (const line of numbered) {
      if (line.good === undefined && line.kind === undefined) continue
      const answer = await send(endpoint, line.bytes, 'application/json')
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
      if (line.kind === 'BOM') {
        expect(answer, `line ${line.lineNumber}`).toMatchObject({ status: 200, body: { durable: true } })
        bomBodies++
      } else if (line.good) expect(answer, `line ${line.lineNumber}`).toMatchObject({ status: 200, body: { durable: true } })
      else {
        expect(answer.status, `line ${line.lineNumber} (${line.kind}): ${JSON.stringify(answer.body).slice(0, 200)}`).toBe(400)
        expect(answer.body.durable).toBe(false)
        expect(String(answer.body.message).length).toBeGreaterThan(10)
      }
    }
    expect([...statuses.keys()].sort()).toEqual([200, 400])

    // The whole corpus as one NDJSON request: the good ones written, each bad one named by index and line.
    const { input } = corpusInput(hostileCorpus(1000, 1516).filter((l) => !(l.kind === 'oversize payload')))
    const batch = await send(endpoint, input, 'application/x-ndjson')
    expect(batch.status).toBe(400)
    const results = batch.body.results as Array<{ index: number; line?: number; durable: boolean; error?: { message: string } }>
    const bad = results.filter((r) => !r.durable)
    expect(bad.length).toBeGreaterThanOrEqual(1000)
    for (const r of bad) expect(r.line, JSON.stringify(r)).toBeGreaterThan(0)

    const tail = await wal.run(['tail', '-n', 'orders', '--json'])
    expect(tail.code).toBe(0)
    const written = tail.stdout.split('\n').filter(Boolean)
    expect(written.length).toBe(numbered.filter((l) => l.good).length + bomBodies + results.filter((r) => r.durable).length)
    // Payloads are stored as the exact text sent.
    const byKey = new Map(numbered.filter((l) => l.good).map((l) => [l.good!.key, l.good!.payload]))
    const line = written.find((l) => (JSON.parse(l) as { key: string }).key === 'good-2')!
    const span = scanObjectField(line, 'payload')!
    expect(line.slice(span.start, span.end)).toBe(byKey.get('good-2'))
    expect(await (await fetch(`${daemon.url}/healthz`)).json()).toEqual({ status: 'ok' })
    expect(await daemon.stop()).toBe(0)
  }, 300_000)
})

describe('an HTTP target and headers HTTP cannot carry', () => {
  it('a mutation header beyond Latin-1 is dead-lettered at once (fatal, saying why), not retried forever; its neighbours land', async () => {
    const { startTargetServer } = await import('../helpers/http-target-server.js')
    const server = await startTargetServer()
    try {
      writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { partitions: 1, targets: { api: { type: 'http', url: server.url, timeoutMs: 5000 } } } } }))
      const input = [
        { key: 'good-1', payload: { n: 1 }, headers: { 'x-name': 'Zoë' } },
        { key: 'arrow', payload: { n: 2 }, headers: { 'x-name': 'a → b' } },
        { key: 'good-2', payload: { n: 3 } },
      ]
      expect((await wal.run(['produce', '-n', 'orders'], { input: input.map((l) => JSON.stringify(l)).join('\n') })).code).toBe(0)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(consumed.code).toBe(8)
      expect(JSON.parse(consumed.stdout)).toMatchObject({ targets: [{ applied: 2, retried: 0, deadLettered: 1 }] })
      expect(server.received.map((r) => r.key).sort()).toEqual(['good-1', 'good-2'])
      const dead = JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<Record<string, unknown>> }
      expect(dead.entries).toEqual([
        expect.objectContaining({
          key: 'arrow',
          errorClass: 'fatal',
          code: 'HTTP_HEADER_INVALID',
          attempts: 1,
          message: 'header "x-name" of the mutation cannot be sent over HTTP: its value has "→" (U+2192) at index 2, and HTTP header values carry only Latin-1 (U+0000 to U+00FF); percent-encode it, or send it in the payload',
        }),
      ])
    } finally {
      await server.close()
    }
  })

  it('sends a mutation\'s headers as given, never lets one merge into wal\'s own, and dead-letters one HTTP cannot carry as given at once', async () => {
    const { startTargetServer } = await import('../helpers/http-target-server.js')
    const server = await startTargetServer()
    try {
      writeFileSync(
        join(wal.cwd, '.walrc.json'),
        JSON.stringify({ namespaces: { orders: { partitions: 1, targets: { api: { type: 'http', url: server.url, timeoutMs: 3000, headers: { 'x-team': 'ops' } } }, retry: { maxAttempts: 3, initialBackoffMs: 0 } } } }),
      )
      const input = [
        { key: 'forged', payload: 2, headers: { 'Idempotency-Key': 'forged', 'Content-Type': 'text/html', 'X-Wal-Key': 'other', 'X-Team': 'mine' } },
        { key: 'length', payload: 3, headers: { 'Content-Length': '0' } },
        { key: 'host', payload: 4, headers: { host: 'evil.example' } },
        { key: 'encoding', payload: 5, headers: { 'transfer-encoding': 'chunked' } },
        { key: 'last', payload: 6 },
      ]
      // In an object literal "__proto__" sets the prototype: that line is written by hand.
      const lines = ['{"key":"proto","payload":1,"headers":{"__proto__":"p"}}', '{"key":"ctor","payload":1,"headers":{"constructor":"c","toString":"t"}}', ...input.map((l) => JSON.stringify(l))]
      expect((await wal.run(['produce', '-n', 'orders'], { input: lines.join('\n') })).code).toBe(0)
      const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle', '--json'])
      expect(consumed.code, consumed.stderr).toBe(8)
      expect(JSON.parse(consumed.stdout)).toMatchObject({ targets: [{ applied: 3, retried: 0, deadLettered: 4 }] })
      const headersOf = (key: string): Array<[string, string]> => {
        const raw = server.received.find((r) => r.key === key)!.rawHeaders
        return Array.from({ length: raw.length / 2 }, (_, i) => [raw[2 * i]!.toLowerCase(), raw[2 * i + 1]!] as [string, string])
      }
      expect(headersOf('ctor')).toEqual(expect.arrayContaining([['constructor', 'c'], ['tostring', 't'], ['x-team', 'ops']]))
      const forged = headersOf('forged')
      const id = server.received.find((r) => r.key === 'forged')!.idempotencyKey
      expect(id).toMatch(/^[0-9A-Z]{26}$/)
      for (const [name, value] of [['idempotency-key', id], ['content-type', 'application/json'], ['x-wal-key', 'forged'], ['x-team', 'mine']]) {
        expect(forged.filter(([n]) => n === name), name).toEqual([[name, value]])
      }
      expect(server.received.map((r) => r.key).sort()).toEqual(['ctor', 'forged', 'last'])
      const dead = (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: Array<{ key: string; code: string; attempts: number; message: string }> }).entries
      expect(dead.map((e) => [e.key, e.code, e.attempts]).sort()).toEqual([
        ['encoding', 'HTTP_HEADER_INVALID', 1],
        ['host', 'HTTP_HEADER_INVALID', 1],
        ['length', 'HTTP_HEADER_INVALID', 1],
        ['proto', 'HTTP_HEADER_INVALID', 1],
      ])
      expect(dead.find((e) => e.key === 'length')!.message).toBe(
        'header "Content-Length" of the mutation cannot be sent over HTTP: HTTP itself sets it (it frames the request or the connection); send it under another name, or in the payload',
      )
    } finally {
      await server.close()
    }
  }, 60_000)

  it('a configured header HTTP itself sets (Content-Length, Host) is a config error (exit 3) naming the key, not a request that hangs', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { api: { type: 'http', url: 'http://127.0.0.1:9/', headers: { 'Content-Length': '0', Host: 'evil.example' } } } } } }))
    const result = await wal.run(['config', 'validate'])
    expect(result.code).toBe(3)
    expect(result.stderr).toContain('namespaces.orders.targets.api.headers.Content-Length')
    expect(result.stderr).toContain('namespaces.orders.targets.api.headers.Host')
    expect(result.stderr).toContain('a header name HTTP does not set itself (not host, content-length, transfer-encoding, connection, keep-alive, upgrade, expect)')
  })

  it('a configured header beyond Latin-1 is a config error (exit 3) naming the key', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { api: { type: 'http', url: 'http://127.0.0.1:9/', headers: { 'x-team': 'café ☕' } } } } } }))
    const result = await wal.run(['config', 'validate'])
    expect(result.code).toBe(3)
    expect(result.stderr).toContain('namespaces.orders.targets.api.headers.x-team')
    expect(result.stderr).toContain('a header value HTTP can carry: Latin-1 characters (U+0000 to U+00FF), no line breaks or control characters')
  })
})
