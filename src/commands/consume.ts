import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../lib/cli/base-command.js'
import { countFlag, durationFlag, rateFlag } from '../lib/cli/flags.js'
import { renderConsumeSummary, renderDeadLetteredNotice } from '../lib/cli/render.js'
import type { ConsumeSummary } from '../lib/consume/consume.js'
import { ExitCode } from '../lib/errors.js'

export default class Consume extends WalCommand {
  static override summary = "Apply a namespace's mutations to its targets, with retries, delays and a dead-letter queue."
  static override description = `Reads the log and applies each mutation to every target of the namespace (or the one named): per-key order kept, different keys in parallel. Retryable failures back off and retry; fatal ones and spent attempts go to the DLQ with their failure history; an unreachable target is paused, not given up on. A record that cannot be decoded is never applied: it goes to the DLQ with error class poison, and the consumer moves on. Offsets are committed only after apply.
Ctrl-C (or SIGTERM) stops reading, lets work in flight finish (up to --drain-timeout), commits and exits 0; a second Ctrl-C exits 130 at once, and what was not committed is redone by the next consumer.
On an SQS namespace there are no offsets: a message is deleted once every target applied it (or dead-lettered it), retries wait hidden in the queue (visibility timeout), and --shard I/N takes the shard queues i with i % N == I (--shard auto: all of them; consumers share a queue by themselves). --target is refused there when the namespace has several targets.`
  static override examples = [
    '<%= config.bin %> consume --until-idle',
    '<%= config.bin %> consume -n orders --shard 3/8',
    '<%= config.bin %> consume -n orders --shard auto --concurrency 64',
    '<%= config.bin %> consume -n orders --target eu-west --rate 200/s',
  ]

  static override flags = {
    namespace: Flags.string({ char: 'n', description: 'Namespace to consume (default: defaultNamespace of the config, or $WAL_NAMESPACE, else "default").' }),
    shard: Flags.string({ description: 'Partitions to own: I/N (those with partition % N == I), or auto (a fair share among running consumers). Default: all.' }),
    target: Flags.string({ description: 'Apply to this target only.' }),
    'until-idle': Flags.boolean({
      description:
        'Exit once nothing is left to do now (delayed mutations stay scheduled): 0, or 8 if mutations were dead-lettered during the run; 5 naming the target when one stays paused for --idle-timeout.',
    }),
    'idle-timeout': durationFlag({
      description: 'With --until-idle: how long a target may make no progress with work left before wal gives up on it (exit 5).',
      default: '2m',
      min: 1000,
      max: 7 * 86_400_000,
      example: '2m',
    }),
    concurrency: countFlag({ description: 'Mutations applied at once per target (one at a time per key). Default: 16, or the concurrency of a Cassandra target.', min: 1, max: 10_000, example: '64' }),
    rate: rateFlag({ description: 'At most this many applies, e.g. 100/s or 6000/m.' }),
    'lease-ttl': durationFlag({ description: 'How long a dead consumer keeps its partitions before another takes them over.', default: '10s', min: 1000, max: 600_000, example: '10s' }),
    'drain-timeout': durationFlag({ description: 'On stop, how long work in flight may take to finish.', default: '30s', min: 100, max: 3_600_000, example: '30s' }),
  }

  async run(): Promise<ConsumeSummary> {
    const { flags } = await this.parse(Consume)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { consume } = await import('../lib/consume/consume.js')
    const summary = await consume({
      ...this.common(flags),
      namespace: flags.namespace,
      shard: flags.shard,
      target: flags.target,
      untilIdle: flags['until-idle'],
      idleTimeout: flags['idle-timeout'],
      concurrency: flags.concurrency,
      rate: flags.rate,
      leaseTtl: flags['lease-ttl'],
      drainTimeout: flags['drain-timeout'],
      signal: this.signal,
    })
    this.log(renderConsumeSummary(summary))
    // Not an error (the summary above is the output), but scripts must be able to tell: exit 8.
    if (summary.deadLettered > 0) {
      if (!this.jsonEnabled()) this.logToStderr(renderDeadLetteredNotice(summary))
      process.exitCode = ExitCode.deadLettered
    }
    return summary
  }
}
