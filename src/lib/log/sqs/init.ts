/**
 * Creates an SQS namespace's queues: the DLQ first (14 days' retention, the most SQS keeps), then one
 * queue per shard with a redrive policy to it. Existing queues are left as they are; a redrive policy
 * that points elsewhere or a different maxReceiveCount is reported.
 */
import type { NamespaceSettings } from '../../config/schema.js'
import type { InitializedPart } from '../../ns/init.js'
import { isQueueMissing } from '../../sqs/client.js'
import { SqsQueues } from './sqs-log.js'

const MAX_RETENTION_SECONDS = String(14 * 86_400)

export async function initSqsNamespace(settings: NamespaceSettings): Promise<InitializedPart[]> {
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
    return parts
  } finally {
    queues.close()
  }
}
