/**
 * Creates an SQS namespace's queues: the DLQ first (14 days' retention, the most SQS keeps), then one
 * queue per shard with a redrive policy to it. Existing queues are left as they are; a redrive policy
 * that points elsewhere or a different maxReceiveCount is reported.
 */
import type { NamespaceSettings } from '../../config/schema.js'
import { remapRefused, type InitializedPart } from '../../ns/init.js'
import { isQueueMissing } from '../../sqs/client.js'
import { SqsQueues } from './sqs-log.js'

const MAX_RETENTION_SECONDS = String(14 * 86_400)

/**
 * `allowRemap`: when shard queues of another count exist (shards raised or lowered since the last
 * `ns init`), create the missing ones and report the change; without it, refuse (exit 3), since keys
 * would go to other queues and lose their order across the change.
 */
export async function initSqsNamespace(settings: NamespaceSettings, allowRemap = false): Promise<InitializedPart[]> {
  const sqs = settings.sqs!
  const queues = await SqsQueues.open(sqs)
  try {
    const { sdk, client, names } = queues
    const fifo: Record<string, string> = sqs.fifo ? { FifoQueue: 'true' } : {}
    const existing = async (name: string): Promise<string | null> => {
      try {
        const { QueueUrl } = await client.send(new sdk.GetQueueUrlCommand({ QueueName: name }))
        return QueueUrl ?? null
      } catch (error) {
        if (isQueueMissing(error)) return null
        throw queues.error(error, `queue "${name}"`)
      }
    }
    const create = async (name: string, attributes: Record<string, string>): Promise<string> => {
      try {
        const { QueueUrl } = await client.send(new sdk.CreateQueueCommand({ QueueName: name, Attributes: attributes }))
        return QueueUrl!
      } catch (error) {
        throw queues.error(error, `CreateQueue "${name}"`)
      }
    }
    // The shard queues that exist now, whatever the config says: base (one shard) or base-I.
    const suffix = sqs.fifo ? '.fifo' : ''
    const listed: string[] = []
    let nextToken: string | undefined
    do {
      let page
      try {
        page = await client.send(new sdk.ListQueuesCommand({ QueueNamePrefix: sqs.queue, NextToken: nextToken, MaxResults: 1000 }))
      } catch (error) {
        throw queues.error(error, `ListQueues "${sqs.queue}"`)
      }
      listed.push(...(page.QueueUrls ?? []).map((url) => decodeURIComponent(url.slice(url.lastIndexOf('/') + 1))))
      nextToken = page.NextToken
    } while (nextToken)
    const escaped = sqs.queue.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    const numbered = new RegExp(`^${escaped}-(\\d+)${suffix.replace('.', '\\.')}$`)
    const single = listed.includes(`${sqs.queue}${suffix}`)
    const indices = listed.flatMap((name) => (numbered.exec(name) ? [Number(numbered.exec(name)![1])] : []))
    const from = indices.length > 0 ? Math.max(...indices) + 1 : single ? 1 : null
    const orphans = [...(sqs.shards > 1 && single ? [`${sqs.queue}${suffix}`] : []), ...indices.filter((i) => sqs.shards === 1 || i >= sqs.shards).map((i) => `${sqs.queue}-${i}${suffix}`)]
    const remap = from !== null && (from !== sqs.shards || orphans.length > 0)
    if (remap && !allowRemap) throw remapRefused(settings.name, 'shard queues', from, sqs.shards, `queue ${sqs.queue}${suffix}${from > 1 ? ` (${from} shard queues)` : ''}`, 'shards')
    const parts: InitializedPart[] = []
    let dlqUrl = await existing(names.dlq)
    parts.push({ role: 'dlq', name: names.dlq, status: dlqUrl ? 'exists' : 'created', partitions: null, replicationFactor: null })
    dlqUrl ??= await create(names.dlq, { ...fifo, MessageRetentionPeriod: MAX_RETENTION_SECONDS })
    const dlqArn = (await queues.attributes(dlqUrl, ['QueueArn'])).QueueArn!
    const redrive = { deadLetterTargetArn: dlqArn, maxReceiveCount: sqs.maxReceiveCount }
    for (const [shard, name] of names.shards.entries()) {
      const url = await existing(name)
      if (!url) {
        await create(name, {
          ...fifo,
          VisibilityTimeout: String(sqs.visibilityTimeoutSeconds),
          MessageRetentionPeriod: MAX_RETENTION_SECONDS,
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: String(sqs.maxReceiveCount) }),
        })
        parts.push({ role: sqs.shards === 1 ? 'log' : `log shard ${shard}`, name, status: 'created', partitions: null, replicationFactor: null })
        continue
      }
      const part: InitializedPart = { role: sqs.shards === 1 ? 'log' : `log shard ${shard}`, name, status: 'exists', partitions: null, replicationFactor: null }
      const policy = (await queues.attributes(url, ['RedrivePolicy'])).RedrivePolicy
      const found = policy ? (JSON.parse(policy) as { deadLetterTargetArn?: string; maxReceiveCount?: string | number }) : null
      if (!found) part.warning = `has no redrive policy: messages that keep failing are never moved to ${names.dlq} by SQS`
      else if (found.deadLetterTargetArn !== redrive.deadLetterTargetArn) part.warning = `redrives to ${found.deadLetterTargetArn}, not ${dlqArn}`
      else if (Number(found.maxReceiveCount) !== redrive.maxReceiveCount) part.warning = `has maxReceiveCount ${found.maxReceiveCount}, the config says ${redrive.maxReceiveCount}`
      parts.push(part)
    }
    if (remap) {
      parts[1]!.remapped = { from: from!, to: sqs.shards }
      parts[1]!.warning = `${parts[1]!.warning ? `${parts[1]!.warning}; ` : ''}the namespace now has ${sqs.shards} shard queue${sqs.shards === 1 ? '' : 's'} (was ${from}): keys were re-mapped, so per-key order holds only among mutations written after the change`
      for (const name of orphans) {
        const url = (await existing(name))!
        const waiting = (await queues.attributes(url, ['ApproximateNumberOfMessages'])).ApproximateNumberOfMessages ?? '0'
        parts.push({
          role: 'old shard',
          name,
          status: 'exists',
          partitions: null,
          replicationFactor: null,
          warning: `is no longer a shard queue of the config, and no consumer reads it: about ${waiting} messages wait there; set shards: ${from} and drain it (wal consume -n ${settings.name} --until-idle) before deleting it`,
        })
      }
    }
    return parts
  } finally {
    queues.close()
  }
}
