import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { timeFlag } from '../../lib/cli/flags.js'
import { renderResetPlan } from '../../lib/cli/render.js'
import type { ResetResult } from '../../lib/offsets/offsets.js'

export default class OffsetsReset extends WalCommand {
  static override summary = "Move a target's committed offsets back (apply again) or forward (pass by): a dry-run plan unless --execute."
  static override description =
    'Prints per partition the current and new offset and how many mutations are applied again or passed by. With --execute, applies the plan in one transaction and writes an audit line (wal dlq audit). Refused (exit 9) while a running consumer holds the partitions; --force fences it (embedded): it commits nothing more for them and continues from the new offsets.'
  static override examples = [
    '<%= config.bin %> offsets reset -n orders --target store --to-time 2026-12-01T09:00:00Z',
    '<%= config.bin %> offsets reset -n orders --target store --to-time 2026-12-01T09:00:00Z --execute',
    '<%= config.bin %> offsets reset -n orders --target store --to-offset 0:120,1:98 --execute',
    '<%= config.bin %> offsets reset -n orders --target store --shift-by=-10 --execute --force',
  ]
  static override flags = {
    namespace: Flags.string({ char: 'n', description: 'Namespace of the target (default: defaultNamespace of the config, or $WAL_NAMESPACE, else "default").' }),
    target: Flags.string({ description: 'The target whose offsets to move (required).' }),
    'to-time': timeFlag({ description: 'To the first mutation appended at or after this time (ISO 8601, or a duration ago: 2h).' }),
    'to-offset': Flags.string({ description: 'To these offsets: PARTITION:OFFSET[,PARTITION:OFFSET…] (other partitions stay).' }),
    'to-beginning': Flags.boolean({ description: 'To the first offset the log holds.' }),
    'to-end': Flags.boolean({ description: 'To the end: pass by everything not applied yet.' }),
    'shift-by': Flags.string({ description: 'By this many offsets per partition: negative back, positive forward (--shift-by=-10).' }),
    execute: Flags.boolean({ description: 'Apply the plan (without it, only print it).' }),
    force: Flags.boolean({ description: 'Fence a running consumer that holds the partitions instead of refusing.' }),
  }

  async run(): Promise<ResetResult> {
    const { flags } = await this.parse(OffsetsReset)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { resetOffsets } = await import('../../lib/offsets/offsets.js')
    const result = await resetOffsets({
      ...this.common(flags),
      namespace: flags.namespace,
      target: flags.target,
      toTime: flags['to-time'],
      toOffset: flags['to-offset'],
      toBeginning: flags['to-beginning'],
      toEnd: flags['to-end'],
      shiftBy: flags['shift-by'],
      execute: flags.execute,
      force: flags.force,
    })
    this.log(renderResetPlan(result))
    return result
  }
}
