import type { Message } from '@aws-sdk/client-sqs'
import { describe, expect, it } from 'vitest'

import { decodeEnvelopeLine } from '../../src/lib/envelope/envelope.js'
import { deadLetterContext, decodeMessage, dedupId, encodeMessage, groupId, MAX_DELAY_SECONDS, messageBytes } from '../../src/lib/log/sqs/codec.js'
import { namespaceQueues } from '../../src/lib/log/sqs/queues.js'

const defaults = { namespace: 'orders', nowMs: Date.parse('2026-11-22T00:00:00Z') }
const source = { queue: 'orders', shard: 2, namespace: 'orders' }

function received(out: ReturnType<typeof encodeMessage>, extra: Partial<Message> = {}): Message {
  return {
    MessageId: '6bb5cae3-f634-4d5b-bee9-1f897c75fd0c',
    ReceiptHandle: 'r',
    Body: out.MessageBody,
    MessageAttributes: out.MessageAttributes,
    Attributes: { SentTimestamp: String(defaults.nowMs + 5), ApproximateReceiveCount: '1' },
    ...extra,
  }
}

describe('the SQS message codec', () => {
  it('keeps the envelope in the body and reads every field back', () => {
    const mutation = decodeEnvelopeLine(
      JSON.stringify({ key: 'user-1', payload: { a: 1 }, headers: { source: 'crm' }, notBefore: '2030-01-01T00:00:00.000Z', target: 'kv', idempotencyKey: 'op-1', attempts: 2 }),
      defaults,
    )
    const out = encodeMessage(mutation, { fifo: false, delaySeconds: 12.2 })
    expect(out.DelaySeconds).toBe(13)
    expect(out.MessageAttributes?.['wal-id']?.StringValue).toBe(mutation.id)
    const record = decodeMessage(received(out), source)
    expect(record).toMatchObject({ ...mutation, partition: 2, offset: 0, appendedAtMs: defaults.nowMs + 5 })
  })

  it('also sends the user\'s headers as message attributes, as many as SQS\'s 10 allow beside wal\'s own, skipping names and values SQS refuses', () => {
    const headers: Record<string, string> = { source: 'crm', 'trace.id': 'abc', 'AWS.reserved': 'x', 'wal-replays': '1', 'bad name': 'y', empty: '', bell: 'a\u0007b', emoji: 'ok \u{1F600}' }
    for (let i = 0; i < 10; i++) headers[`h${i}`] = String(i)
    const mutation = decodeEnvelopeLine(JSON.stringify({ key: 'k', payload: 1, headers }), defaults)
    const attributes = encodeMessage(mutation, { fifo: false }).MessageAttributes!
    expect(Object.keys(attributes)).toEqual(['wal-envelope', 'wal-id', 'source', 'trace.id', 'emoji', 'h0', 'h1', 'h2', 'h3', 'h4'])
    expect(attributes.emoji).toEqual({ DataType: 'String', StringValue: 'ok \u{1F600}' })
    // Every header is still in the envelope, which is what wal reads back.
    expect(decodeMessage(received(encodeMessage(mutation, { fifo: false })), source).headers).toEqual(headers)
    // In the DLQ, wal's own attributes come first.
    const dead = encodeMessage(mutation, { fifo: false, dead: { target: 'kv', errorClass: 'fatal', code: 'X', message: 'm', atMs: 0, shard: 0 } }).MessageAttributes!
    expect(Object.keys(dead)).toHaveLength(10)
    expect(Object.keys(dead).slice(-2)).toEqual(['source', 'trace.id'])
  })

  it('caps DelaySeconds at 900 and sends no delay on FIFO queues, where the key is the group and the idempotency key the dedup id', () => {
    const mutation = decodeEnvelopeLine(JSON.stringify({ key: 'user 1/ü', payload: 1, idempotencyKey: 'pay-1' }), defaults)
    expect(encodeMessage(mutation, { fifo: false, delaySeconds: 5000 }).DelaySeconds).toBe(MAX_DELAY_SECONDS)
    const fifo = encodeMessage(mutation, { fifo: true, delaySeconds: 60 })
    expect(fifo.DelaySeconds).toBeUndefined()
    expect(fifo.MessageDeduplicationId).toBe('pay-1')
    expect(fifo.MessageGroupId).toBe(groupId('user 1/ü'))
    expect(fifo.MessageGroupId).toMatch(/^[\x21-\x7e]{1,128}$/)
    expect(groupId('user-1')).toBe('user-1')
    expect(groupId('a'.repeat(200))).not.toBe(groupId(`${'a'.repeat(199)}b`))
  })

  it('never gives two distinct idempotency keys one dedup id (SQS would drop the second as a duplicate)', () => {
    const hashed = dedupId('ü')
    expect(hashed).toMatch(/^h-[A-Za-z0-9_-]{43}$/)
    // A key spelled like another's hashed form is hashed too, not sent as it is.
    expect(dedupId(hashed)).not.toBe(hashed)
    // Keys that differ only in characters SQS does not take, or past 128 characters, stay apart.
    const keys = ['a b', 'a_b', 'a\tb', 'a\u00a0b', 'x'.repeat(128), 'x'.repeat(129), `${'x'.repeat(128)}y`, `${'x'.repeat(128)}z`, '']
    expect(new Set(keys.map(dedupId)).size).toBe(keys.length)
    for (const key of keys.slice(0, -1)) expect(dedupId(key)).toMatch(/^[\x21-\x7e]{1,128}$/)
  })

  it('wraps a message another client sent: stable id, JSON body as JSON, other bytes as base64, attributes as headers', () => {
    const foreign: Message = {
      MessageId: 'm-1',
      Body: 'not json',
      MessageAttributes: { origin: { DataType: 'String', StringValue: 'legacy' } },
      Attributes: { SentTimestamp: String(defaults.nowMs), MessageGroupId: 'g-7' },
    }
    const a = decodeMessage(foreign, source)
    expect(a).toMatchObject({ key: 'g-7', headers: { origin: 'legacy' }, payload: { encoding: 'base64' }, createdAtMs: defaults.nowMs, attempts: 0 })
    expect(decodeMessage(foreign, source).id).toBe(a.id)
    expect(a.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/)
    const json = decodeMessage({ ...foreign, MessageId: 'm-2', Body: '{"n":1}', Attributes: { SentTimestamp: '1' } }, source)
    expect(json.payload).toEqual({ encoding: 'json', json: '{"n":1}' })
    expect(json.key).toBe(json.id)
  })

  it('reads why a message is in the DLQ from its attributes, or says SQS moved it', () => {
    const mutation = decodeEnvelopeLine(JSON.stringify({ key: 'k', payload: 1 }), defaults)
    const dead = encodeMessage(mutation, { fifo: false, dead: { target: 'api', errorClass: 'retryable', code: 'HTTP_503', message: 'refused', atMs: defaults.nowMs, shard: 1 } })
    const message = received(dead)
    expect(deadLetterContext(message, decodeMessage(message, source), 13)).toEqual({ target: 'api', errorClass: 'retryable', code: 'HTTP_503', message: 'refused', atMs: defaults.nowMs, shard: 1, parked: false })
    const moved = received(encodeMessage(mutation, { fifo: false }), { Attributes: { SentTimestamp: '1', ApproximateReceiveCount: '14' } })
    expect(deadLetterContext(moved, decodeMessage(moved, source), 13)).toMatchObject({ errorClass: 'infrastructure', code: 'SQS_MAX_RECEIVES', message: 'moved to the DLQ by SQS after 14 receives (maxReceiveCount 13)' })
  })

  it('counts body and attributes against the 256 KiB limit', () => {
    expect(messageBytes('abc', { a: { DataType: 'String', StringValue: 'xy' } })).toBe(3 + 1 + 6 + 2)
  })

  it('names one queue per shard, FIFO ones ending in .fifo, and one DLQ', () => {
    const cluster = { name: 'c', region: 'r', endpoint: null, profile: null, credentials: null, requestTimeoutMs: 1, connectionTimeoutMs: 1 }
    const common = { cluster, maxReceiveCount: 1, visibilityTimeoutSeconds: 30, maxNativeDelaySeconds: 900 }
    expect(namespaceQueues({ ...common, queue: 'jobs', fifo: false, shards: 1 })).toEqual({ shards: ['jobs'], dlq: 'jobs-dlq' })
    expect(namespaceQueues({ ...common, queue: 'jobs', fifo: true, shards: 2 })).toEqual({ shards: ['jobs-0.fifo', 'jobs-1.fifo'], dlq: 'jobs-dlq.fifo' })
  })
})
