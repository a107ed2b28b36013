import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { dlqFlags, filterOptions } from '../../lib/cli/dlq-flags.js'
import type { PurgeResult } from '../../lib/dlq/dlq.js'

export default class DlqPurge extends WalCommand {
  static override summary = 'Delete DLQ entries for good (asks first unless --yes); recorded in the audit log.'
  static override examples = ['<%= config.bin %> dlq purge -n orders --error-class fatal --until 30d', '<%= config.bin %> dlq purge -n orders --key test-user --yes']
  static override description =
    'Prints how many entries match, of how many. A filter that matches every entry (a typo in --where can) is asked about even with --yes, and refused without a terminal, unless --all says every entry is meant.'
  static override flags = {
    ...dlqFlags,
    yes: Flags.boolean({ char: 'y', description: 'Do not ask for confirmation.' }),
    all: Flags.boolean({ description: 'Every entry is meant: do not refuse a filter that matches them all.' }),
  }

  async run(): Promise<PurgeResult> {
    const { flags } = await this.parse(DlqPurge)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { purgeDeadLetters } = await import('../../lib/dlq/dlq.js')
    const result = await purgeDeadLetters({ ...this.common(flags), ...filterOptions(flags), namespace: flags.namespace, yes: flags.yes, all: flags.all })
    this.log(`purged ${result.purged} entries (${result.matched} of ${result.total} matched)`)
    return result
  }
}
