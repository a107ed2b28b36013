import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../lib/cli/base-command.js'
import { renderSkip, renderSkipList } from '../lib/cli/render.js'
import { UsageError } from '../lib/errors.js'
import type { SkipEntry } from '../lib/log/backend.js'
import type { SkipResult } from '../lib/skip/skip.js'

export default class Skip extends WalCommand {
  static override summary = 'Mark mutations that consumers must not apply (at one target, or any); --undo takes the mark off. Audited.'
  static override description =
    'Consumers pass a skipped mutation by (also when a reset or a replay brings it again) and record it as skipped: wal explain ID shows it, wal dlq audit shows who skipped what and why.'
  static override strict = false
  static override examples = [
    '<%= config.bin %> skip 01M80K6XFDG62PY7DFWNXXTEAH -n orders --reason "wrong price"',
    '<%= config.bin %> skip 01M80K6XFDG62PY7DFWNXXTEAH 01M80K6XFDG62PY7DFWNXXTEAJ -n orders --target store',
    '<%= config.bin %> skip --undo 01M80K6XFDG62PY7DFWNXXTEAH -n orders',
    '<%= config.bin %> skip --list -n orders',
  ]
  static override args = { id: Args.string({ description: 'Mutation ids (one or more; none with --list).' }) }
  static override flags = {
    namespace: Flags.string({ char: 'n', description: 'Namespace of the mutations (default: defaultNamespace of the config, or $WAL_NAMESPACE, else "default").' }),
    target: Flags.string({ description: 'Skip only at this target (default: at every target).' }),
    reason: Flags.string({ description: 'Why (kept with the mark, shown in explain and the audit).' }),
    undo: Flags.boolean({ description: 'Take the mark off (for the same --target, or the every-target mark).', exclusive: ['list'] }),
    list: Flags.boolean({ description: 'List the marks (with --target: that target\'s and the every-target ones).' }),
  }

  async run(): Promise<SkipResult | { namespace: string; skips: SkipEntry[] }> {
    const { argv, flags } = await this.parse(Skip)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { listSkips, skip } = await import('../lib/skip/skip.js')
    if (flags.list) {
      if (argv.length > 0) throw new UsageError('--list takes no ids', { suggestions: ['wal explain ID shows whether one mutation is skipped'] })
      const list = await listSkips({ ...this.common(flags), namespace: flags.namespace, target: flags.target })
      this.log(renderSkipList(list))
      return list
    }
    const result = await skip({ ...this.common(flags), namespace: flags.namespace, ids: argv as string[], target: flags.target, reason: flags.reason, undo: flags.undo })
    this.log(renderSkip(result))
    return result
  }
}
