
import { WalCommand } from '../../lib/cli/base-command.js'
import { countFlag } from '../../lib/cli/flags.js'
import { dlqFlags, filterOptions } from '../../lib/cli/dlq-flags.js'
import { renderDeadLetters } from '../../lib/cli/render.js'
import type { DlqListing } from '../../lib/dlq/dlq.js'

export default class DlqLs extends WalCommand {
  static override summary = "List a namespace's dead-lettered mutations, parked ones marked."
  static override description =
    'On an SQS namespace the DLQ queue is read without consuming it: its messages are received and held hidden while the command runs (up to 5 minutes), then made visible again. Entry numbers (SEQ) hold for one command there; use the mutation id across commands.'
  static override examples = ['<%= config.bin %> dlq ls -n orders', '<%= config.bin %> dlq ls -n orders --target api --since 1h --json']
  static override flags = { ...dlqFlags, limit: countFlag({ description: 'Show at most this many.', min: 1, max: 1_000_000_000 }) }

  async run(): Promise<{ entries: DlqListing[] }> {
    const { flags } = await this.parse(DlqLs)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { listDeadLetters } = await import('../../lib/dlq/dlq.js')
    const entries = await listDeadLetters({ ...this.common(flags), ...filterOptions(flags), namespace: flags.namespace, limit: flags.limit })
    this.log(renderDeadLetters(entries))
    return { entries }
  }
}
