// Toxiproxy (Shopify) in front of Kafka, Cassandra and ElasticMQ, for fault tests: built once from the
// Go module proxy into the cache, then run on 127.0.0.1 with its REST API.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

import { CACHE_DIR, endpoints } from './endpoints.js'
import { ServiceError, ensureDir, requireTool, say, startProcess } from './lib.js'

export const name = 'toxiproxy'
export const external = endpoints.toxiproxy.external
export const readyTimeoutMs = 30_000
const VERSION = 'v2.12.0'

export function describe() {
  return `API ${endpoints.toxiproxy.api}`
}

function binary() {
  const bin = ensureDir(CACHE_DIR, 'toxiproxy', VERSION)
  const server = join(bin, 'server')
  if (existsSync(server)) return server
  requireTool('go', 'install Go (https://go.dev/dl, or Debian: apt-get install golang)')
  say(`building toxiproxy ${VERSION} from the Go module proxy (first run only)…`)
  const result = spawnSync('go', ['install', `github.com/Shopify/toxiproxy/v2/cmd/server@${VERSION}`], {
    env: { ...process.env, GOBIN: bin, CGO_ENABLED: '0' },
    encoding: 'utf8',
  })
  if (result.status !== 0 || !existsSync(server)) {
    throw new ServiceError(`building toxiproxy failed:\n${(result.stdout + result.stderr).split('\n').slice(-20).join('\n')}`)
  }
  return server
}

export async function start() {
  const url = new URL(endpoints.toxiproxy.api)
  startProcess(name, binary(), ['-host', url.hostname, '-port', url.port])
}

async function api(path, init = {}) {
  const response = await fetch(new URL(path, endpoints.toxiproxy.api), { ...init, signal: AbortSignal.timeout(3000) })
  if (!response.ok) throw new ServiceError(`toxiproxy ${init.method ?? 'GET'} ${path}: ${response.status} ${await response.text()}`)
  return response.status === 204 ? undefined : response.json()
}

export async function ready() {
  const version = await fetch(new URL('/version', endpoints.toxiproxy.api), { signal: AbortSignal.timeout(1000) })
  return version.ok
}

/** Creates (or corrects) the proxies, and clears every toxic left over from an earlier run. */
export async function afterUp() {
  const existing = await api('/proxies')
  for (const [proxyName, { listen, upstream }] of Object.entries(endpoints.toxiproxy.proxies)) {
    const current = existing[proxyName]
    if (current && current.listen === listen && current.upstream === upstream) continue
    if (current) await api(`/proxies/${proxyName}`, { method: 'DELETE' })
    await api('/proxies', { method: 'POST', body: JSON.stringify({ name: proxyName, listen, upstream, enabled: true }) })
  }
  await api('/reset', { method: 'POST' })
}
