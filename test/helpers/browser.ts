/**
 * A headless Chromium (Debian's `chromium` package) opening a page served by the test, for tests that
 * must behave like a web page in the operator's browser. The page reports back to the server that
 * served it; the browser is killed at the end.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { waitFor } from './wal.js'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']

/** The browser to run: $WAL_TEST_CHROMIUM, else Debian's. */
export function chromiumPath(): string {
  const found = [process.env.WAL_TEST_CHROMIUM, ...CANDIDATES].find((p): p is string => p !== undefined && p !== '' && existsSync(p))
  if (found === undefined) throw new Error('no Chromium for the browser tests: install it with `apt-get install -y chromium`, or set WAL_TEST_CHROMIUM')
  return found
}

/**
 * Serves a page at http://127.0.0.1:PORT/ (an origin of its own), opens it in headless Chromium and
 * resolves with what the page POSTs to /report. `page` gets the page's origin (after `beforeOpen`, which
 * gets it too, e.g. to allow it in a config).
 */
export async function runPageInBrowser(
  page: string | ((origin: string) => string),
  { timeoutMs = 60_000, beforeOpen }: { timeoutMs?: number; beforeOpen?: (origin: string) => Promise<void> } = {},
): Promise<unknown> {
  let html = ''
  let report: unknown
  let reported = false
  const server = createServer((request, response) => {
    if (request.method === 'POST' && request.url === '/report') {
      let body = ''
      request.setEncoding('utf8').on('data', (d: string) => (body += d))
      request.on('end', () => {
        report = JSON.parse(body) as unknown
        reported = true
        response.end('ok')
      })
      return
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    response.end(html)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const origin = `http://127.0.0.1:${port}`
  try {
    await beforeOpen?.(origin)
    html = typeof page === 'string' ? page : page(origin)
  } catch (error) {
    server.close()
    throw error
  }
  const profile = mkdtempSync(join(tmpdir(), 'wal-chromium-'))
  const browser = spawn(
    chromiumPath(),
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      '--remote-debugging-port=0',
      `http://127.0.0.1:${port}/`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  browser.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)))
  let exited = false
  browser.on('exit', () => (exited = true))
  try {
    await waitFor(
      () => {
        if (exited && !reported) throw new Error(`chromium exited before the page reported:\n${stderr}`)
        return reported
      },
      { timeoutMs, intervalMs: 100 },
    )
    return report
  } finally {
    if (!exited) {
      browser.kill('SIGKILL')
      await waitFor(() => exited, { timeoutMs: 10_000 }).catch(() => undefined)
    }
    server.closeAllConnections()
    server.close()
    rmSync(profile, { recursive: true, force: true })
  }
}
