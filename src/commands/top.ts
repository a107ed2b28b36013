import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../lib/cli/base-command.js'
import { durationFlag } from '../lib/cli/flags.js'
import type { TopSnapshot } from '../lib/top/top.js'

export default class Top extends WalCommand {
  static override summary = 'Watch throughput, lag, retries, circuit state, DLQ depth and top errors per namespace, target and shard.'
  static override description = `Reads the running daemon's status when there is one (GET /v1/status), otherwise the backends directly (as wal ns show and wal dlq stats do).
On a terminal: a live view, refreshed every --interval; keys: s sort (lag, throughput, dlq, name), / filter by namespace, p pause, q quit.
Piped or with --json: one snapshot, then exit (throughput needs two snapshots, so it shows as - there).`
  static override examples = ['<%= config.bin %> top', '<%= config.bin %> top -n orders --interval 5s', '<%= config.bin %> top --json | jq .rows']

  static override flags = {
    namespace: Flags.string({ char: 'n', description: 'Only this namespace.' }),
    interval: durationFlag({ description: 'Time between refreshes of the live view.', default: '2s', min: 100, max: 3_600_000, example: '2s' }),
  }

  async run(): Promise<TopSnapshot | undefined> {
    const { flags } = await this.parse(Top)
    const { top } = await import('../lib/top/top.js')
    const { renderTopSnapshot } = await import('../lib/views/top/top-rows.js')
    const snapshot = await top({ ...this.common(flags), namespace: flags.namespace, interval: flags.interval, signal: this.signal })
    if (snapshot && !this.jsonEnabled()) this.log(renderTopSnapshot(snapshot))
    return snapshot
  }
}
