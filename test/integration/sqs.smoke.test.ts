/**
 * Smoke tests of the SQS test server (ElasticMQ, scripts/services/elasticmq.js): the calls the SQS backend
 * relies on — message attributes, redrive to a dead-letter queue and message move tasks back — work
 * through @aws-sdk/client-sqs. Expects the servers to be up (`node scripts/services.js up`).
 */
import { randomBytes } from 'node:crypto'

import {
  CreateQueueCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ListDeadLetterSourceQueuesCommand,
  ListMessageMoveTasksCommand,
  ReceiveMessageCommand,
  SQSClient,
  SendMessageCommand,
  StartMessageMoveTaskCommand,
  type Message,
  type MessageAttributeValue,
} from '@aws-sdk/client-sqs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { endpoints } from '../../scripts/services/endpoints.js'

let sqs: SQSClient
/** Every queue a test created, deleted in afterAll even when the test failed. */
const created: string[] = []

beforeAll(() => {
  sqs = new SQSClient({
    endpoint: endpoints.sqs.endpoint,
    region: endpoints.sqs.region,
    credentials: endpoints.sqs.credentials,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 2000, requestTimeout: 10_000 },
  })
})

afterAll(async () => {
  try {
    await Promise.all(created.map((QueueUrl) => sqs.send(new DeleteQueueCommand({ QueueUrl })).catch(() => {})))
  } finally {
    sqs.destroy()
  }
})

async function createQueue(label: string, attributes: Record<string, string> = {}): Promise<{ url: string; arn: string }> {
  const name = `wal-smoke-${label}-${randomBytes(4).toString('hex')}`
  const { QueueUrl: url } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))
  if (!url) throw new Error(`CreateQueue ${name} returned no QueueUrl`)
  created.push(url)
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))
  const arn = Attributes?.QueueArn
  if (!arn) throw new Error(`GetQueueAttributes ${name} returned no QueueArn`)
  return { url, arn }
}

/** A source queue whose messages go to a fresh dead-letter queue after `maxReceiveCount` receives. */
async function queueWithDeadLetters(label: string, maxReceiveCount: number) {
  const dlq = await createQueue(`${label}-dlq`)
  const source = await createQueue(label, { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: String(maxReceiveCount) }) })
  return { source, dlq }
}

async function until<T>(what: string, attempt: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await attempt()
    if (result !== undefined) return result
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** One receive (long-polling for up to a second); only the message with `body`, if it came. */
async function receiveOnce(queueUrl: string, body: string, visibilityTimeout: number): Promise<Message | undefined> {
  const { Messages = [] } = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 1,
      VisibilityTimeout: visibilityTimeout,
      MessageAttributeNames: ['All'],
    }),
  )
  return Messages.find((m) => m.Body === body)
}

async function approximateCount(queueUrl: string): Promise<number> {
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }))
  return Number(Attributes?.ApproximateNumberOfMessages)
}

const attributes: Record<string, MessageAttributeValue> = {
  'wal-namespace': { DataType: 'String', StringValue: 'orders' },
  'wal-attempt': { DataType: 'Number', StringValue: '3' },
  'wal-key': { DataType: 'Binary', BinaryValue: new Uint8Array([0x00, 0xff, 0xfe, 0x7f]) },
}

/** Sends a message to the source queue, receives it once without deleting it, and waits until it is dead-lettered. */
async function deadLetterOneMessage(source: { url: string }, dlq: { url: string }, body: string) {
  await sqs.send(new SendMessageCommand({ QueueUrl: source.url, MessageBody: body, MessageAttributes: attributes }))
  const first = await until('the first receive', () => receiveOnce(source.url, body, 1))
  expect(first.Body).toBe(body)
  // Not deleted: once its visibility timeout ends, the next receive on the source exceeds maxReceiveCount
  // and moves it to the dead-letter queue instead of returning it.
  await until('the message in the dead-letter queue', async () => {
    const again = await receiveOnce(source.url, body, 1)
    expect(again, 'the message came back from the source queue after maxReceiveCount receives').toBeUndefined()
    return (await approximateCount(dlq.url)) === 1 ? true : undefined
  })
}

describe('the SQS test server (ElasticMQ)', { timeout: 60_000 }, () => {
  it('delivers a message with its body and String, Number and Binary attributes', async () => {
    const queue = await createQueue('attributes')
    const body = `hello ${randomBytes(8).toString('hex')} — ünïcode`
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body, MessageAttributes: attributes }))
    expect(sent.MessageId).toBeTruthy()
    expect(sent.MD5OfMessageAttributes).toMatch(/^[0-9a-f]{32}$/)

    const received = await until('the message', () => receiveOnce(queue.url, body, 30))
    expect(received.MessageId).toBe(sent.MessageId)
    expect(received.MD5OfMessageAttributes).toBe(sent.MD5OfMessageAttributes)
    expect(received.MessageAttributes?.['wal-namespace']).toMatchObject({ DataType: 'String', StringValue: 'orders' })
    expect(received.MessageAttributes?.['wal-attempt']).toMatchObject({ DataType: 'Number', StringValue: '3' })
    expect(received.MessageAttributes?.['wal-key']?.DataType).toBe('Binary')
    expect(Buffer.from(received.MessageAttributes?.['wal-key']?.BinaryValue ?? [])).toEqual(Buffer.from([0x00, 0xff, 0xfe, 0x7f]))

    await sqs.send(new DeleteMessageCommand({ QueueUrl: queue.url, ReceiptHandle: received.ReceiptHandle }))
    expect(await approximateCount(queue.url)).toBe(0)
  })

  it('moves a message that was received but not deleted into the dead-letter queue (maxReceiveCount 1)', async () => {
    const { source, dlq } = await queueWithDeadLetters('redrive', 1)
    const body = `poison ${randomBytes(8).toString('hex')}`
    await deadLetterOneMessage(source, dlq, body)

    // Visibility timeout 0: look at it in the dead-letter queue without hiding it.
    const dead = await until('the message in the dead-letter queue', () => receiveOnce(dlq.url, body, 0))
    expect(dead.MessageAttributes?.['wal-namespace']?.StringValue).toBe('orders')
    expect(await approximateCount(source.url)).toBe(0)
  })

  it('lists the source queue among the dead-letter queue’s source queues', async () => {
    const { source, dlq } = await queueWithDeadLetters('sources', 2)
    const { queueUrls } = await sqs.send(new ListDeadLetterSourceQueuesCommand({ QueueUrl: dlq.url }))
    expect(queueUrls).toEqual([source.url])
  })

  it('brings dead-lettered messages back to the source queue with a message move task', async () => {
    const { source, dlq } = await queueWithDeadLetters('move', 1)
    const body = `retry-me ${randomBytes(8).toString('hex')}`
    await deadLetterOneMessage(source, dlq, body)

    const { TaskHandle } = await sqs.send(new StartMessageMoveTaskCommand({ SourceArn: dlq.arn, DestinationArn: source.arn }))
    expect(TaskHandle).toBeTruthy()
    const task = await until('the move task to complete', async () => {
      const { Results = [] } = await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: dlq.arn }))
      const mine = Results.find((t) => t.TaskHandle === TaskHandle)
      return mine?.Status === 'COMPLETED' ? mine : undefined
    })
    expect(task).toMatchObject({ SourceArn: dlq.arn, DestinationArn: source.arn })

    const back = await until('the message back in the source queue', () => receiveOnce(source.url, body, 30))
    expect(back.MessageAttributes?.['wal-attempt']?.StringValue).toBe('3')
    await sqs.send(new DeleteMessageCommand({ QueueUrl: source.url, ReceiptHandle: back.ReceiptHandle }))
    expect(await approximateCount(dlq.url)).toBe(0)
  })
})
