import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'

export default class DlqShow extends WalCommand {
  static override summary = 'Show one DLQ entry whole: why it failed, and its envelope with the failure history.'
  static override examples = ['<%= config.bin %> dlq show 17 -n orders', '<%= config.bin %> dlq show 01M80K6XFDG62PY7DFWNXXTEAH -n orders --json']
  static override args = { entry: Args.string({ description: 'The entry: its number (SEQ in dlq ls), its stable id (ENTRY in dlq ls on SQS: the MessageId), or the mutation id.', required: true }) }
  static override flags = { namespace: Flags.string({ char: 'n', description: 'Namespace whose DLQ to use (default: defaultNamespace of the config, or $WAL_NAMESPACE, else "default").' }) }

  async run(): Promise<{ entries: unknown[] }> {
    const { args, flags } = await this.parse(DlqShow)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { showDeadLetter } = await import('../../lib/dlq/dlq.js')
    const entries = await showDeadLetter({ ...this.common(flags), namespace: flags.namespace, id: args.entry })
    this.log(entries.map((e) => JSON.stringify(e, null, 2)).join('\n'))
    return { entries }
  }
}
