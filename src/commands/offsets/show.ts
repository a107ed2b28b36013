import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { renderOffsets } from '../../lib/cli/render.js'
import type { OffsetsReport } from '../../lib/offsets/offsets.js'

export default class OffsetsShow extends WalCommand {
  static override summary = "Each target's committed offset per partition, the log's low and high offsets, the lag and the consumer holding it."
  static override examples = ['<%= config.bin %> offsets show -n orders', '<%= config.bin %> offsets show -n orders --target store --json']
  static override flags = {
    namespace: Flags.string({ char: 'n', description: 'Namespace whose offsets to show (default: defaultNamespace of the config, or $WAL_NAMESPACE, else "default").' }),
    target: Flags.string({ description: 'Only this target.' }),
  }

  async run(): Promise<OffsetsReport> {
    const { flags } = await this.parse(OffsetsShow)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { showOffsets } = await import('../../lib/offsets/offsets.js')
    const report = await showOffsets({ ...this.common(flags), namespace: flags.namespace, target: flags.target })
    this.log(renderOffsets(report))
    return report
  }
}
