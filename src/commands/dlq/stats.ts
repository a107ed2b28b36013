import { WalCommand } from '../../lib/cli/base-command.js'
import { dlqFlags, filterOptions } from '../../lib/cli/dlq-flags.js'
import { renderDeadLetterStats } from '../../lib/cli/render.js'
import type { DlqStatsGroup } from '../../lib/dlq/dlq.js'

export default class DlqStats extends WalCommand {
  static override summary = 'Why did it fail: DLQ entries grouped by target, error class and code, with first and last seen and an example.'
  static override examples = ['<%= config.bin %> dlq stats -n orders', '<%= config.bin %> dlq stats -n orders --since 24h --json']
  static override flags = dlqFlags

  async run(): Promise<{ total: number; groups: DlqStatsGroup[] }> {
    const { flags } = await this.parse(DlqStats)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { deadLetterStats } = await import('../../lib/dlq/dlq.js')
    const stats = await deadLetterStats({ ...this.common(flags), ...filterOptions(flags), namespace: flags.namespace })
    const filtered = [flags.key, flags.target, flags['error-class'], flags.since, flags.until, flags.where].some((f) => f !== undefined)
    this.log(renderDeadLetterStats(stats, filtered))
    return stats
  }
}
