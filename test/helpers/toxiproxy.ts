/**
 * A Toxiproxy proxy of a test's own, on a free port in front of a shared server: the test can cut it
 * off, slow it down or black-hole it without touching the proxies other test files (or another
 * checkout's run) are using. Remove it when the test ends.
 */
import { randomBytes } from 'node:crypto'

import { endpoints } from '../../scripts/services/endpoints.js'

export interface TestProxy {
  /** host:port to connect to instead of the server. */
  address: string
  setEnabled(enabled: boolean): Promise<void>
  /** Adds a toxic (latency, timeout, reset_peer, bandwidth…) and returns its name. */
  addToxic(type: string, attributes: Record<string, number>, stream?: 'upstream' | 'downstream'): Promise<string>
  removeToxic(name: string): Promise<void>
  removeToxics(): Promise<void>
  remove(): Promise<void>
}

export async function toxiproxy(path: string, init: RequestInit = {}): Promise<unknown> {
  const response = await fetch(new URL(path, endpoints.toxiproxy.api), { ...init, signal: AbortSignal.timeout(5000) })
  if (!response.ok) throw new Error(`toxiproxy ${init.method ?? 'GET'} ${path}: ${response.status} ${await response.text()}`)
  return response.status === 204 ? undefined : response.json()
}

/** A new proxy in front of `upstream` (host:port); `label` names it in Toxiproxy's listing. */
export async function createProxy(label: string, upstream: string): Promise<TestProxy> {
  const name = `wal-${label}-${randomBytes(4).toString('hex')}`
  const created = (await toxiproxy('/proxies', { method: 'POST', body: JSON.stringify({ name, listen: '127.0.0.1:0', upstream, enabled: true }) })) as { listen: string }
  const toxics = new Set<string>()
  let count = 0
  const removeToxic = async (toxic: string): Promise<void> => {
    await toxiproxy(`/proxies/${name}/toxics/${toxic}`, { method: 'DELETE' })
    toxics.delete(toxic)
  }
  return {
    address: created.listen,
    async setEnabled(enabled) {
      await toxiproxy(`/proxies/${name}`, { method: 'POST', body: JSON.stringify({ enabled }) })
    },
    async addToxic(type, attributes, stream = 'downstream') {
      const toxic = `${type}-${count++}`
      await toxiproxy(`/proxies/${name}/toxics`, { method: 'POST', body: JSON.stringify({ name: toxic, type, stream, attributes }) })
      toxics.add(toxic)
      return toxic
    },
    removeToxic,
    async removeToxics() {
      for (const toxic of [...toxics]) await removeToxic(toxic).catch(() => undefined)
    },
    async remove() {
      await toxiproxy(`/proxies/${name}`, { method: 'DELETE' }).catch(() => undefined)
    },
  }
}
