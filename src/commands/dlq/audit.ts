import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { countFlag } from '../../lib/cli/flags.js'
import { renderAudit } from '../../lib/cli/render.js'
import type { AuditRecord } from '../../lib/log/backend.js'

export default class DlqAudit extends WalCommand {
  static override summary = 'Who replayed or purged what (with which filter, how many), reset which offsets, or skipped which mutations, and when.'
  static override examples = ['<%= config.bin %> dlq audit -n orders', '<%= config.bin %> dlq audit -n orders --json']
  static override flags = {
    namespace: Flags.string({ char: 'n', description: 'Namespace whose DLQ audit log to show (default: defaultNamespace of the config, or $WAL_NAMESPACE, else "default").' }),
    limit: countFlag({ description: 'The most recent this many.', default: 100, min: 1, max: 1_000_000 }),
  }

  async run(): Promise<{ audit: AuditRecord[] }> {
    const { flags } = await this.parse(DlqAudit)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { auditLog } = await import('../../lib/dlq/dlq.js')
    const audit = await auditLog({ ...this.common(flags), namespace: flags.namespace, limit: flags.limit })
    this.log(renderAudit(audit))
    return { audit }
  }
}
