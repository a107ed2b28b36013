/**
 * The daemon's consumer of an SQS namespace: one SqsConsumer for all its targets, as `wal consume` runs
 * it (a message is received once, so one consumer applies it to each target before deleting it), over
 * the daemon's shard of the namespace's queues. Loaded only when the daemon runs an SQS namespace.
 */
import { SqsConsumerState } from '../log/sqs/consumer-state.js'
import { SqsConsumer, type SqsConsumerTarget } from '../log/sqs/consumer.js'
import { shardQueues } from '../log/sqs/queues.js'
import type { SqsLog } from '../log/sqs/sqs-log.js'
import { parseShard } from '../consume/consume.js'
import { openTarget } from '../targets/open.js'
import type { ConsumerRun, ConsumerRunContext } from './consumers.js'

export async function startSqsRun(ctx: ConsumerRunContext): Promise<ConsumerRun> {
  const { spec } = ctx
  const log = ctx.log as SqsLog
  const shards = shardQueues(parseShard(spec.shard, log.partitions), log.partitions)
  const targets: SqsConsumerTarget[] = []
  const closeTargets = async (): Promise<void> => {
    for (const t of targets.reverse()) await t.target.close().catch(() => undefined)
  }
  try {
    for (const settings of spec.targets) {
      targets.push({ settings, target: await openTarget(settings), limiters: ctx.limiters(settings), observer: ctx.observer(settings.name) })
    }
  } catch (error) {
    await closeTargets()
    throw error
  }
  const consumer = new SqsConsumer({
    log,
    targets,
    shards,
    concurrency: spec.concurrency,
    now: ctx.now,
    untilIdle: false,
    stop: ctx.stop,
    abort: ctx.abort,
    onEvent: ctx.onEvent,
    onWarning: ctx.onWarning,
  })
  // The queues are the state: lag is what waits in them (as `wal ns show` reads it), the same for each target.
  const state = new SqsConsumerState(log, spec.targets[0]!.name)
  return {
    run: () => consumer.run(),
    snapshot: () => consumer.snapshot(),
    async lag() {
      const [marks, committed] = await Promise.all([log.marks(), state.committed(shards)])
      return spec.targets.flatMap((t) =>
        shards.map((p) => ({ namespace: spec.namespace.name, target: t.name, partition: p, lag: Math.max(0, marks[p]!.high - (committed.get(p) ?? 0)) })),
      )
    },
    async counts() {
      // One DLQ for the namespace: each target's row shows its depth.
      const counts = await state.counts()
      return new Map(spec.targets.map((t) => [t.name, counts]))
    },
    close: closeTargets,
  }
}
