import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs'
import { afterEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'

const api = endpoints.toxiproxy.api

async function toxiproxy(path: string, init: RequestInit = {}): Promise<unknown> {
  const response = await fetch(new URL(path, api), init)
  expect(response.ok, `${init.method ?? 'GET'} ${path}: ${response.status}`).toBe(true)
  return response.status === 204 ? undefined : response.json()
}

function sqsThroughProxy(): SQSClient {
  return new SQSClient({
    endpoint: endpoints.sqs.toxicEndpoint,
    region: endpoints.sqs.region,
    credentials: endpoints.sqs.credentials,
    maxAttempts: 1,
  })
}

/** ListQueues, given up after 1.5 s. */
function listQueues(client: SQSClient): Promise<unknown> {
  return client.send(new ListQueuesCommand({}), { abortSignal: AbortSignal.timeout(1500) })
}

afterEach(async () => {
  await toxiproxy('/reset', { method: 'POST' })
})

describe('Toxiproxy in front of the test servers', () => {
  it('has a proxy for each server', async () => {
    const proxies = (await toxiproxy('/proxies')) as Record<string, { listen: string; upstream: string; enabled: boolean }>
    for (const [name, { listen, upstream }] of Object.entries(endpoints.toxiproxy.proxies)) {
      expect(proxies[name]).toMatchObject({ listen, upstream, enabled: true })
    }
  })

  it('makes a call time out with a timeout toxic, and heals when the toxic is removed', async () => {
    const client = sqsThroughProxy()
    try {
      await expect(listQueues(client)).resolves.toBeDefined()
      await toxiproxy('/proxies/sqs/toxics', {
        method: 'POST',
        body: JSON.stringify({ name: 'blackhole', type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } }),
      })
      const started = Date.now()
      await expect(listQueues(client)).rejects.toThrow()
      const waited = Date.now() - started
      expect(waited).toBeGreaterThanOrEqual(1000)
      expect(waited).toBeLessThan(10_000)
      await toxiproxy('/proxies/sqs/toxics/blackhole', { method: 'DELETE' })
      await expect(listQueues(client)).resolves.toBeDefined()
    } finally {
      client.destroy()
    }
  })

  it('cuts a server off when its proxy is disabled, and restores it when enabled', async () => {
    const client = sqsThroughProxy()
    try {
      await toxiproxy('/proxies/sqs', { method: 'POST', body: JSON.stringify({ enabled: false }) })
      await expect(listQueues(client)).rejects.toThrow()
      await toxiproxy('/proxies/sqs', { method: 'POST', body: JSON.stringify({ enabled: true }) })
      await expect(listQueues(client)).resolves.toBeDefined()
    } finally {
      client.destroy()
    }
  })
})
