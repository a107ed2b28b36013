import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../lib/cli/base-command.js'
import { countFlag, positionFlag } from '../lib/cli/flags.js'

export default class Tail extends WalCommand {
  static override summary = 'Read mutations from the log.'
  static override description = `Bounded by default: --until end takes the end of the log when tail starts and exits 0 there, even while producers keep writing. --follow keeps reading new mutations until interrupted.
With --json, prints one envelope per line, which wal produce accepts back unchanged (JSON payloads as the exact text they were written as).
A record that cannot be decoded is printed marked POISON and tail goes on; with --json it is a JSON line with "error" and the stored bytes in "raw" (base64), which wal produce refuses.
On an SQS namespace, tail is a peek at what is queued now: SQS has no offsets and no history (what was consumed is gone), orders only within a FIFO queue's message group, and cannot list a queue, so tail receives the messages, holds them hidden for up to 30 s while it reads, then makes them visible again. Each peek counts as a receive towards the queue's maxReceiveCount, and a message being applied or delayed is not seen. --from and --until take only beginning and end there.
--follow on a namespace nobody produced to yet waits for its log (saying so on stderr) and prints from its first mutation.
On a terminal (not --json, not piped), --follow shows a live view. Its keys:
  /        filter: key=VALUE, or text in the line (Enter applies, Esc cancels)
  ↑ ↓ k j  select a row
  Enter    open or close the selected mutation's details and failure history
  Esc      close the details, or drop the selection
  q        quit (Ctrl-C: interrupt, exit 130)`
  static override examples = [
    '<%= config.bin %> tail',
    '<%= config.bin %> tail -n orders --from 15m --json > last-15-minutes.ndjson',
    '<%= config.bin %> tail -n orders --from 3:1200 --max 10',
    '<%= config.bin %> tail -n orders -k user-42 --follow',
    '<%= config.bin %> tail -n orders --from -5 --format \'%p:%o %k %s\\n\'',
    '<%= config.bin %> tail -n orders --where \'headers.source == "crm" and payload.op == "delete"\' --json',
  ]

  static override flags = {
    namespace: Flags.string({ char: 'n', description: 'Namespace to read (default: defaultNamespace of the config, or $WAL_NAMESPACE, else "default").' }),
    from: positionFlag({
      words: ['beginning', 'end'],
      offsets: true,
      description:
        'Where to start: beginning, end, an offset (42; 3:42 for partition 3 only), the last N (-5: of the whole log, in time order; 3:-5: of partition 3), an ISO time, or a duration ago (15m). Default: beginning, or end with --follow.',
    }),
    until: positionFlag({ description: 'Where to stop: end (as it was at start; the default without --follow), an ISO time, or a duration ago.', words: ['end'], offsets: false }),
    max: countFlag({ description: 'Stop after this many mutations.', min: 1, max: 1_000_000_000, example: '100' }),
    key: Flags.string({ char: 'k', description: 'Only mutations with this key.' }),
    where: Flags.string({
      description: 'Only mutations matching this expression (the dlq --where language): id, key, target, partition, offset, createdAt, appendedAt, notBefore, attempts, idempotencyKey, headers.NAME, payload.PATH.',
    }),
    format: Flags.string({
      description: 'Print each mutation with this kcat-like format: %k key, %s payload, %h headers, %p partition, %o offset, %T time (ms), %i id, %t namespace, %% a percent; \\n \\t \\r \\\\ escapes. "json" is --json.',
    }),
    follow: Flags.boolean({ char: 'f', description: 'Keep waiting for new mutations.' }),
  }

  async run(): Promise<undefined> {
    const { flags } = await this.parse(Tail)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { tail } = await import('../lib/tail/tail.js')
    await tail({
      ...this.common(flags),
      namespace: flags.namespace,
      from: flags.from,
      until: flags.until,
      max: flags.max,
      key: flags.key,
      where: flags.where,
      format: flags.format,
      follow: flags.follow,
      signal: this.signal,
    })
    // The records themselves are the output; no summary object follows the NDJSON stream.
    return undefined
  }
}
