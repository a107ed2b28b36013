import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'
import { createProxy, toxiproxy, type TestProxy } from '../helpers/toxiproxy.js'


/** An SQS client through `proxy`, giving up after one attempt. */
function sqsThrough(proxy: TestProxy): SQSClient {
  return new SQSClient({
    endpoint: `http://${proxy.address}`,
    region: endpoints.sqs.region,
    credentials: endpoints.sqs.credentials,
    maxAttempts: 1,
  })
}

/** ListQueues, given up after 1.5 s. */
function listQueues(client: SQSClient): Promise<unknown> {
  return client.send(new ListQueuesCommand({}), { abortSignal: AbortSignal.timeout(1500) })
}

// Faults go on a proxy of this file's own: the shared ones may be in use by another run.
let proxy: TestProxy
beforeEach(async () => {
  proxy = await createProxy('smoke-sqs', new URL(endpoints.sqs.endpoint).host)
})
afterEach(async () => {
  await proxy.remove()
})

describe('Toxiproxy in front of the test servers', () => {
  it('has a proxy for each server', async () => {
    const proxies = (await toxiproxy('/proxies')) as Record<string, { listen: string; upstream: string; enabled: boolean }>
    for (const [name, { listen, upstream }] of Object.entries(endpoints.toxiproxy.proxies)) {
      // Enabled or not is another run's business: the shared proxies are cut off by fault tests.
      expect(proxies[name]).toMatchObject({ listen, upstream })
    }
  })

  it('makes a call time out with a timeout toxic, and heals when the toxic is removed', async () => {
    const client = sqsThrough(proxy)
    try {
      await expect(listQueues(client)).resolves.toBeDefined()
      const blackhole = await proxy.addToxic('timeout', { timeout: 0 }, 'upstream')
      const started = Date.now()
      // Given up by the client's own 1.5 s abort, not answered: the toxic held the call.
      await expect(listQueues(client)).rejects.toThrow(/abort/i)
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
      await proxy.removeToxic(blackhole)
      await expect(listQueues(client)).resolves.toBeDefined()
    } finally {
      client.destroy()
    }
  })

  it('cuts a server off when its proxy is disabled, and restores it when enabled', async () => {
    const client = sqsThrough(proxy)
    try {
      await proxy.setEnabled(false)
      await expect(listQueues(client)).rejects.toThrow()
      await proxy.setEnabled(true)
      await expect(listQueues(client)).resolves.toBeDefined()
    } finally {
      client.destroy()
    }
  })
})
