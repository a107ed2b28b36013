import { WalCommand } from '../../lib/cli/base-command.js'
import { dlqFlags, filterOptions } from '../../lib/cli/dlq-flags.js'

export default class DlqExport extends WalCommand {
  static override summary = 'Write DLQ entries to stdout as envelopes (failure history included) that wal produce accepts back.'
  static override examples = ['<%= config.bin %> dlq export -n orders > dlq.ndjson', '<%= config.bin %> dlq export -n orders --error-class fatal | wal produce -n orders-quarantine']
  static override flags = dlqFlags

  async run(): Promise<undefined> {
    const { flags } = await this.parse(DlqExport)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { exportDeadLetters } = await import('../../lib/dlq/dlq.js')
    await exportDeadLetters({ ...this.common(flags), ...filterOptions(flags), namespace: flags.namespace })
    // The envelopes are the output.
    return undefined
  }
}
