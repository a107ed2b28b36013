// Secrets in the config (a bearer token, HTTP header values, a password in a URL) never reach what
// people and tools read: config show, ns show, errors, consume output, the DLQ, daemon logs, /metrics.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { authHeaders, killDaemons, post, startForegroundDaemon } from '../helpers/daemon.js'
import { makeSandbox, waitFor, type Sandbox } from '../helpers/wal.js'

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

const SECRETS = {
  urlPassword: 'Url-Pass-5ecret',
  xAuth: 'X-Auth-5ecret-value',
  bearer: 'Bearer-5ecret-value',
  apiKey: 'Api-Key-5ecret',
  cookie: 'session=Cookie-5ecret',
  token: 'Daemon-Token-5ecret-long-enough',
}

/** An endpoint that refuses every write (400), and remembers the Authorization headers it saw. */
async function refusingEndpoint(): Promise<{ port: number; authorizations: string[] }> {
  const authorizations: string[] = []
  server = createServer((request, response) => {
    authorizations.push(String(request.headers.authorization))
    request.resume()
    request.on('end', () => {
      response.writeHead(400)
      response.end('no thanks')
    })
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  return { port: (server!.address() as AddressInfo).port, authorizations }
}

function configure(port: number, daemon: Record<string, unknown> = {}): void {
  writeFileSync(
    join(wal.cwd, '.walrc.json'),
    JSON.stringify({
      namespaces: {
        orders: {
          retry: { maxAttempts: 1 },
          targets: {
            api: { type: 'http', url: `http://wal:${SECRETS.urlPassword}@127.0.0.1:${port}/in`, headers: { 'x-auth': SECRETS.xAuth, 'x-api-key': SECRETS.apiKey, cookie: SECRETS.cookie, 'x-team': 'visible' } },
            mirror: { type: 'http', url: `http://127.0.0.1:${port}/mirror`, headers: { authorization: `Bearer ${SECRETS.bearer}` } },
          },
        },
      },
      daemon: { port: 0, token: SECRETS.token, ...daemon },
    }),
  )
}

function expectNoSecret(what: string, text: string): void {
  for (const [name, secret] of Object.entries(SECRETS)) expect(text, `${what} shows ${name}`).not.toContain(secret.replace(/^session=/, ''))
}

describe('secrets', () => {
  it('are redacted in config show and ns show, text and --json, leaving the rest readable', async () => {
    const { port } = await refusingEndpoint()
    configure(port)
    for (const args of [['config', 'show'], ['config', 'show', '--json'], ['ns', 'show', 'orders'], ['ns', 'show', 'orders', '--json']]) {
      const result = await wal.run(args)
      expect(result.code, result.stderr).toBe(0)
      expectNoSecret(`wal ${args.join(' ')}`, result.stdout + result.stderr)
    }
    const shown = (await wal.run(['config', 'show', '--json'])).stdout
    expect(shown).toContain(`http://<redacted>@127.0.0.1:${port}/in`)
    expect(shown).toContain('"x-team": "visible"')
    expect(shown).toContain('"x-auth": "<redacted>"')
  })

  it('are not echoed by validation errors, and a URL a target cannot use is refused', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ daemon: { token: 'short-5ecret' } }))
    for (const args of [['config', 'validate'], ['config', 'validate', '--json']]) {
      const result = await wal.run(args)
      expect(result.code).toBe(3)
      expect(result.stderr).toContain('daemon.token')
      expect(result.stderr).not.toContain('short-5ecret')
    }
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { o: { targets: { t: { type: 'http', url: 'file:///etc/passwd' } } } } }))
    const fileUrl = await wal.run(['config', 'validate'])
    expect(fileUrl.code).toBe(3)
    expect(fileUrl.stderr).toContain('namespaces.o.targets.t.url')
    expect(fileUrl.stderr).toContain('an http(s) URL')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { o: { targets: { t: { type: 'http', url: `ftp://u:${SECRETS.urlPassword}@example.com/` } } } } }))
    const ftp = await wal.run(['config', 'validate', '--json'])
    expect(ftp.code).toBe(3)
    expectNoSecret('config validate', ftp.stderr)
  })

  it('are absent from consume output, the DLQ, the daemon log, its status and /metrics, while the URL credentials still authenticate', async () => {
    const endpoint = await refusingEndpoint()
    configure(endpoint.port)
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])).code).toBe(0)
    const consumed = await wal.run(['consume', '-n', 'orders', '--until-idle'])
    expectNoSecret('consume', consumed.stdout + consumed.stderr)
    expect(consumed.stderr).toContain('HTTP_400')
    // The password in the URL is sent as Basic auth, as curl would.
    expect(endpoint.authorizations).toContain(`Basic ${Buffer.from(`wal:${SECRETS.urlPassword}`).toString('base64')}`)
    for (const args of [['dlq', 'ls', '-n', 'orders'], ['dlq', 'ls', '-n', 'orders', '--json'], ['dlq', 'stats', '-n', 'orders', '--json'], ['dlq', 'export', '-n', 'orders']]) {
      const result = await wal.run(args)
      expectNoSecret(`wal ${args.join(' ')}`, result.stdout + result.stderr)
    }

    const daemon = await startForegroundDaemon(wal)
    expect((await post(`${daemon.url}/v1/namespaces/orders/mutations`, { key: 'b', payload: 2 }, { authorization: `Bearer ${SECRETS.token}` })).status).toBe(200)
    await waitFor(async () => (JSON.parse((await wal.run(['dlq', 'ls', '-n', 'orders', '--json'])).stdout) as { entries: unknown[] }).entries.length === 4)
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text()
    const status = await (await fetch(`${daemon.url}/v1/status`, { headers: { ...authHeaders(daemon.url), authorization: `Bearer ${SECRETS.token}` } })).text()
    expect(status).toContain('"deadLettered":1')
    const reload = await wal.run(['daemon', 'reload', '--json'])
    expect(reload.code, reload.stderr).toBe(0)
    expect(await daemon.stop()).toBe(0)
    expectNoSecret('/metrics', metrics)
    expectNoSecret('/v1/status', status)
    expectNoSecret('the daemon log', daemon.output())
  })
})
