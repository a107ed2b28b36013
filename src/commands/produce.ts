import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../lib/cli/base-command.js'
import { durationFlag, rateFlag, timeFlag } from '../lib/cli/flags.js'

export default class Produce extends WalCommand {
  static override summary = 'Write mutations to the log; exit 0 means every one is durable.'
  static override description = `With -p or --payload-file, writes one mutation. Otherwise reads NDJSON envelopes from stdin, one per line (the smallest is {"payload":{…}}), and group-commits them.
Prints one ack line per mutation once it is durable: id, partition, offset. A bad line is reported on stderr with its line number and skipped; the lines around it still land (exit 4).
Limits (checked on every line, as on every way in): times (createdAt, notBefore, --at, now + --delay) from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z, strict ISO 8601 with a zone or integer epoch ms; attempts a safe integer; a payload nested at most 64 levels; a key of 1-1024 characters; headers an object of string values (64 KiB); a line valid UTF-8 (bytes go base64 with "payloadEncoding":"base64"); the payload within the namespace's maxPayloadBytes (1 MiB). A JSON payload is stored as the exact text given.`
  static override examples = [
    `<%= config.bin %> produce -k user-42 -p '{"name":"Ada"}'`,
    `<%= config.bin %> produce -n orders -k order-7 -p '{"op":"put","table":"orders","key":{"id":7},"item":{"id":7}}' --delay 15m`,
    `<%= config.bin %> produce -n emails --at 2026-12-01T09:00:00Z --payload-file mail.json -H source=cron`,
    `cat mutations.ndjson | <%= config.bin %> produce -n orders --json`,
    `<%= config.bin %> tail -n orders --json | <%= config.bin %> produce -n orders-copy`,
    `<%= config.bin %> produce -n orders --rate 200/s < deletes.ndjson`,
    `cat order-lines.ndjson | <%= config.bin %> produce -n orders --txn --json`,
  ]

  static override flags = {
    namespace: Flags.string({ char: 'n', description: 'Namespace to write to (default: each line\'s "namespace", else "default").' }),
    key: Flags.string({ char: 'k', description: 'Key: orders mutations and picks the partition (default: the mutation id).' }),
    payload: Flags.string({ char: 'p', description: 'Payload as JSON, stored as the exact text given (at most 64 levels deep).' }),
    'payload-file': Flags.string({ description: 'Payload from a file: JSON text as it is if it is UTF-8 and parses as JSON, otherwise its bytes (base64).' }),
    header: Flags.string({ char: 'H', description: 'Header name=value (repeatable).', multiple: true }),
    delay: durationFlag({ description: 'Deliver no sooner than this from now: 90s, 15m, 3d, 1h30m.', exclusive: ['at'], min: 0, max: 'calendar', example: '15m' }),
    at: timeFlag({ description: 'Deliver no sooner than this ISO 8601 time (a real calendar day, 1970 to 9999; UTC when no zone).', exclusive: ['delay'], isoOnly: true }),
    jitter: durationFlag({ description: 'Add a random extra delay of up to this much to each mutation (spreads bulk work).', min: 0, max: 365 * 86_400_000, example: '30s' }),
    'idempotency-key': Flags.string({ description: 'Producing again with the same key writes nothing new and acks the original.' }),
    target: Flags.string({ description: 'Deliver only to this target of the namespace.' }),
    rate: rateFlag({ description: 'Write stdin lines at most this fast, e.g. 100/s, 6000/m (smooths bulk writes from scripts).' }),
    txn: Flags.boolean({ description: 'Make the stdin lines one transaction: applied only once all are durable and the input ended (its marker is acked last, with "txn" and "parts").' }),
  }

  async run(): Promise<undefined> {
    const { flags } = await this.parse(Produce)
    // Loaded on use, and only produce's own code: `--help` stays fast, and so does one `wal produce` in a loop.
    const { produce } = await import('../lib/produce/produce.js')
    await produce({
      ...this.common(flags),
      namespace: flags.namespace,
      key: flags.key,
      payload: flags.payload,
      payloadFile: flags['payload-file'],
      headers: flags.header,
      delay: flags.delay,
      at: flags.at,
      jitter: flags.jitter,
      idempotencyKey: flags['idempotency-key'],
      target: flags.target,
      rate: flags.rate,
      txn: flags.txn,
      signal: this.signal,
    })
    // The ack lines are the output; no summary object follows them.
    return undefined
  }
}
