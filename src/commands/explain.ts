import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../lib/cli/base-command.js'
import { renderExplain } from '../lib/cli/render.js'
import type { ExplainReport } from '../lib/explain/explain.js'
import type { TxnReport } from '../lib/txn/explain.js'

export default class Explain extends WalCommand {
  static override summary = 'The life of one mutation: produced when and where, each attempt per target, applied, waiting or dead-lettered, and replays; or of one transaction: parts, marker, progress per target.'
  static override examples = ['<%= config.bin %> explain 01M80K6XFDG62PY7DFWNXXTEAH', '<%= config.bin %> explain 01M80K6XFDG62PY7DFWNXXTEAH -n orders --json']
  static override args = { id: Args.string({ description: 'The mutation id (id= in produce acks, "id" in envelopes), or a transaction id (txn=).', required: true }) }
  static override flags = { namespace: Flags.string({ char: 'n', description: 'Look only in this namespace (default: all).' }) }

  async run(): Promise<ExplainReport | TxnReport> {
    const { args, flags } = await this.parse(Explain)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { explainMutationOrTxn } = await import('../lib/explain/explain.js')
    const report = await explainMutationOrTxn({ ...this.common(flags), id: args.id, namespace: flags.namespace })
    this.log(renderExplain(report))
    return report
  }
}
