// wal's promise under a seeded nemesis (see test/helpers/chaos.ts): WAL_CHAOS_SEED=<n> replays a run.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { chaosSeed, runChaos } from '../helpers/chaos.js'
import { makeSandbox, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

const MAX_PAYLOAD = 64 * 1024

describe('chaos on the embedded log', () => {
  it('keeps every acked mutation (applied in per-key order, unaltered, once in effect, or dead-lettered with a reason) while consumers are killed, frozen past their leases and restarted', async () => {
    const seed = chaosSeed()
    console.log(`chaos seed ${seed} (replay: WAL_CHAOS_SEED=${seed})`)
    const outPath = join(wal.dir, 'out.ndjson')
    writeFileSync(
      join(wal.cwd, '.walrc.json'),
      JSON.stringify({
        namespaces: {
          chaos: {
            partitions: 6,
            maxPayloadBytes: MAX_PAYLOAD,
            retry: { maxAttempts: 3, initialBackoffMs: 50, maxBackoffMs: 200 },
            targets: { store: { type: 'kv' }, out: { type: 'file', path: outPath } },
          },
        },
        // The daemon's leases as short as the consumers' (--lease-ttl): a freeze outlasts them too.
        daemon: { leaseTtlMs: 1500 },
      }),
    )
    const result = await runChaos({
      wal,
      seed,
      namespace: 'chaos',
      kv: 'store',
      file: { name: 'out', path: outPath },
      leaseTtlMs: 1500,
      writers: 3,
      perWriter: 150,
      maxPayloadBytes: MAX_PAYLOAD,
      slots: [['--shard', 'auto'], ['--shard', 'auto'], seed % 2 === 0 ? 'daemon' : ['--shard', '1/2']],
      steps: 12,
      embedded: true,
      log: (m) => console.log(m),
    })
    expect(result.acks.filter((a) => a.durable === true).length, `seed ${seed}`).toBeGreaterThan(0)
    expect(result.problems.slice(0, 30), `seed ${seed}; ${result.actions.join('; ')}`).toEqual([])
  }, 240_000)
})
