import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { countFlag, rateFlag } from '../../lib/cli/flags.js'
import { dlqFlags, filterOptions } from '../../lib/cli/dlq-flags.js'
import { renderReplayPlan } from '../../lib/cli/render.js'
import type { ReplayPlan } from '../../lib/dlq/dlq.js'

export default class DlqReplay extends WalCommand {
  static override summary = 'Put DLQ entries back into the log for their target (or another), rate-limited and resumable.'
  static override description = `Each entry leaves the DLQ only once its copy is durable in the log, so stopping a replay (Ctrl-C, a crash) and running it again neither drops nor duplicates anything. The copy keeps its id, key, headers, payload, createdAt and failure history, and is addressed to the target it failed at.
Loop guard: an entry already replayed --max-replays times is parked (shown by dlq ls) instead of replayed again; parked entries are left out (the plan says how many) unless --include-parked. --dry-run prints the plan and changes nothing. Every replay is recorded in the audit log (wal dlq audit).
On an SQS namespace the DLQ is a queue: replay sends each copy to its key's shard queue, then deletes it from the DLQ (a FIFO queue drops a copy sent twice within 5 minutes; a standard queue may receive it twice after a crash in between). SQS's own message move task is not used: it could not count replays for the loop guard nor route a key to its shard.`
  static override examples = [
    '<%= config.bin %> dlq replay -n orders --dry-run',
    '<%= config.bin %> dlq replay -n orders --target api --error-class retryable --rate 200/s',
    '<%= config.bin %> dlq replay -n orders --where \'code == "HTTP_503"\' --to-target api-eu',
    '<%= config.bin %> dlq replay -n orders -k order-42 --include-parked',
  ]

  static override flags = {
    ...dlqFlags,
    'to-namespace': Flags.string({ description: 'Replay into this namespace instead.' }),
    'to-target': Flags.string({ description: 'Address the copies to this target instead of the one they failed at.' }),
    rate: rateFlag({ description: 'At most this many per second, e.g. 500/s.' }),
    'dry-run': Flags.boolean({ description: 'Print the plan (counts per target and error class); change nothing.' }),
    'max-replays': countFlag({ description: 'Park entries replayed this many times already.', default: 3, min: 1, max: 1000 }),
    'include-parked': Flags.boolean({ description: 'Also replay entries the loop guard parked (or would park); recorded in the audit log.' }),
  }

  async run(): Promise<ReplayPlan> {
    const { flags } = await this.parse(DlqReplay)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { replayDeadLetters } = await import('../../lib/dlq/dlq.js')
    const plan = await replayDeadLetters({
      ...this.common(flags),
      ...filterOptions(flags),
      namespace: flags.namespace,
      toNamespace: flags['to-namespace'],
      toTarget: flags['to-target'],
      rate: flags.rate,
      dryRun: flags['dry-run'],
      maxReplays: flags['max-replays'],
      includeParked: flags['include-parked'],
      signal: this.signal,
    })
    this.log(renderReplayPlan(plan))
    return plan
  }
}
