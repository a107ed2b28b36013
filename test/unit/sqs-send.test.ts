// Sending to a FIFO queue when SQS fails some entries of a SendMessageBatch on its side: an entry is
// sent again only where that keeps its message group's order. (SQS answers per entry; the local SQS
// server never fails an entry, so this is the logic alone, against a client that answers as told.)
import { describe, expect, it } from 'vitest'

import type { SqsLogSettings } from '../../src/lib/config/schema.js'
import { SqsQueues } from '../../src/lib/log/sqs/sqs-log.js'

interface Entry {
  Id: string
  MessageBody: string
  MessageGroupId?: string
}

class SendMessageBatchCommand {
  constructor(readonly input: { QueueUrl: string; Entries: Entry[] }) {}
}

/** Queues whose client fails, the first time it sees them, the entries with these bodies (on SQS's side). */
function queuesFailingOnce(...bodies: string[]): { queues: SqsQueues; calls: string[][] } {
  const calls: string[][] = []
  const failOnce = new Set(bodies)
  const client = {
    send: async (command: SendMessageBatchCommand) => {
      const entries = command.input.Entries
      calls.push(entries.map((e) => e.MessageBody))
      const failing = new Set(entries.filter((e) => failOnce.delete(e.MessageBody)).map((e) => e.Id))
      return {
        Successful: entries.filter((e) => !failing.has(e.Id)).map((e) => ({ Id: e.Id, MessageId: `m-${e.MessageBody}` })),
        // Listed last to first: SQS promises no order.
        Failed: entries.filter((e) => failing.has(e.Id)).reverse().map((e) => ({ Id: e.Id, SenderFault: false, Code: 'InternalError', Message: 'try again' })),
      }
    },
  }
  const settings = { cluster: { name: 'test', endpoint: 'http://127.0.0.1:1', region: 'us-east-1' } } as unknown as SqsLogSettings
  const Queues = SqsQueues as unknown as new (sdk: unknown, client: unknown, settings: SqsLogSettings, names: unknown) => SqsQueues
  return { queues: new Queues({ SendMessageBatchCommand }, client, settings, {}), calls }
}

const message = (body: string, group: string): { MessageBody: string; MessageGroupId: string; MessageDeduplicationId: string } => ({ MessageBody: body, MessageGroupId: group, MessageDeduplicationId: body })

describe('sending a batch to a FIFO queue', () => {
  it('does not send a failed entry again once a later message of its group went through: it is reported, not acked', async () => {
    // a1 fails while a2 (same group) and b1 go in.
    const { queues, calls } = queuesFailingOnce('a1')
    const out = await queues.sendAll('q.fifo', [message('a1', 'a'), message('a2', 'a'), message('b1', 'b')])
    expect(out[0]!.messageId).toBeUndefined()
    expect(out[0]!.error?.message).toContain('a later message of its group (the same key) went through')
    expect(out.slice(1).map((o) => o.messageId)).toEqual(['m-a2', 'm-b1'])
    expect(calls.flat().filter((body) => body === 'a1')).toHaveLength(1)
  })

  it('sends failed entries again in their order when nothing later of their group went through', async () => {
    // The whole of group a fails once (SQS lists the failures in another order); group b goes in.
    const { queues, calls } = queuesFailingOnce('a1', 'a2', 'a3')
    const out = await queues.sendAll('q.fifo', [message('a1', 'a'), message('b1', 'b'), message('a2', 'a'), message('a3', 'a')])
    expect(out.map((o) => o.messageId)).toEqual(['m-a1', 'm-b1', 'm-a2', 'm-a3'])
    // Group a's request, then again with the same three in their order (group b has its own lane).
    expect(calls.filter((bodies) => bodies.includes('a1'))).toEqual([['a1', 'a2', 'a3'], ['a1', 'a2', 'a3']])
  })

  it('sends again an entry whose group has nothing after it in the request, while another group is cut', async () => {
    // a2 fails with nothing of group a after it: retried. b1 fails with b2 in: reported.
    const { queues } = queuesFailingOnce('a2', 'b1')
    const out = await queues.sendAll('q.fifo', [message('a1', 'a'), message('b1', 'b'), message('a2', 'a'), message('b2', 'b')])
    expect(out.map((o) => o.messageId ?? 'error')).toEqual(['m-a1', 'error', 'm-a2', 'm-b2'])
  })
})
