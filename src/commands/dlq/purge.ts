import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { dlqFlags, filterOptions } from '../../lib/cli/dlq-flags.js'

export default class DlqPurge extends WalCommand {
  static override summary = 'Delete DLQ entries for good (asks first unless --yes); recorded in the audit log.'
  static override examples = ['<%= config.bin %> dlq purge -n orders --error-class fatal --until 30d', '<%= config.bin %> dlq purge -n orders --key test-user --yes']
  static override flags = { ...dlqFlags, yes: Flags.boolean({ char: 'y', description: 'Do not ask for confirmation.' }) }

  async run(): Promise<{ purged: number }> {
    const { flags } = await this.parse(DlqPurge)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { purgeDeadLetters } = await import('../../lib/services.js')
    const result = await purgeDeadLetters({ ...this.common(flags), ...filterOptions(flags), namespace: flags.namespace, yes: flags.yes })
    this.log(`purged ${result.purged} entries`)
    return result
  }
}
