/**
 * The log on SQS queues: one queue per shard (a key always goes to the same shard, murmur2 as on every
 * backend), and one DLQ the shard queues redrive to. SQS is a queue, not a log, and this backend says so
 * rather than pretending: there are no offsets (a record's offset is 0, an ack names the queue and the
 * MessageId), no history (what was consumed is gone), and order only within a FIFO queue's message
 * group (the key). Reading without consuming is a peek: messages are received, held hidden while the
 * snapshot is taken, then made visible again — each peek counts as a receive.
 */
import type { Message } from '@aws-sdk/client-sqs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import type { NamespaceSettings, SqsLogSettings } from '../../config/schema.js'
import { decodeEnvelopeLine, encodeEnvelope, headerMap, type LogRecord, type Mutation } from '../../envelope/envelope.js'
import { checkedJson, poisonRecord } from '../../envelope/quarantine.js'
import { formatBytes } from '../../format.js'
import { DurabilityUnknownError, InvalidRecordError, type WalError } from '../../errors.js'
import { txnOf } from '../../txn/txn.js'
import { describeSqsError, sqsClient, type SqsClient, type SqsModule } from '../../sqs/client.js'
import type { AppendOptions, AppendResult, ConsumerStore, DeadLetterQueue, LogBackend, LogInfo, PartitionMark, ReadOptions, TxnInfo } from '../backend.js'
import { partitionForKey } from '../partitioner.js'
import { decodeMessage, encodeMessage, type EncodeOptions, type MessageSource, type OutgoingMessage, MAX_BATCH_ENTRIES, MAX_DELAY_SECONDS, MAX_MESSAGE_BYTES, messageBytes } from './codec.js'
import { SqsStateStore } from './state-store.js'
import { namespaceQueues, type NamespaceQueues } from './queues.js'

/** On a message whose payload is kept in the state store: the SHA-256 (hex) that names it there. */
export const PAYLOAD_REF_HEADER = 'wal-payload-ref'
/** How that payload is encoded ("json" or "base64"). */
export const PAYLOAD_ENCODING_HEADER = 'wal-payload-encoding'

/** SendMessageBatch requests in flight at once per append. */
const SEND_CONCURRENCY = 16
/** FIFO queues: lanes of message groups sent side by side (each lane in order). */
const FIFO_LANES = 16
/** Tries for entries SQS failed on its side (SenderFault false) before the line is reported. */
const ENTRY_TRIES = 4
/** How long a peek holds messages hidden while it pages through a queue. */
const PEEK_HOLD_SECONDS = 30

/** Where one shard queue is. */
export interface ShardQueue {
  shard: number
  name: string
  url: string
}

/** A client and the resolved queue URLs of a namespace, shared by the log, its consumer and its DLQ. */
export class SqsQueues {
  private urls = new Map<string, string>()

  private constructor(
    readonly sdk: SqsModule,
    readonly client: SqsClient,
    readonly settings: SqsLogSettings,
    readonly names: NamespaceQueues,
  ) {}

  static async open(settings: SqsLogSettings): Promise<SqsQueues> {
    const { sdk, client } = await sqsClient(settings.cluster)
    return new SqsQueues(sdk, client, settings, namespaceQueues(settings))
  }

  /** A WalError for an SDK error on `what`. */
  error(error: unknown, what: string, options: { unknownOutcome?: boolean } = {}): WalError {
    return describeSqsError(this.settings.cluster, error, what, options)
  }

  async url(name: string): Promise<string> {
    const known = this.urls.get(name)
    if (known) return known
    try {
      const { QueueUrl } = await this.client.send(new this.sdk.GetQueueUrlCommand({ QueueName: name }))
      this.urls.set(name, QueueUrl!)
      return QueueUrl!
    } catch (error) {
      throw this.error(error, `queue "${name}"`)
    }
  }

  async shard(shard: number): Promise<ShardQueue> {
    const name = this.names.shards[shard]!
    return { shard, name, url: await this.url(name) }
  }

  async attributes(url: string, names: string[]): Promise<Record<string, string>> {
    try {
      const { Attributes } = await this.client.send(new this.sdk.GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names as never }))
      return Attributes ?? {}
    } catch (error) {
      throw this.error(error, 'GetQueueAttributes')
    }
  }

  /** Receives (all attributes). */
  async receive(url: string, options: { max: number; visibilitySeconds: number; waitSeconds: number }, signal?: AbortSignal): Promise<Message[]> {
    try {
      const { Messages } = await this.client.send(
        new this.sdk.ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: options.max,
          VisibilityTimeout: options.visibilitySeconds,
          WaitTimeSeconds: options.waitSeconds,
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: signal },
      )
      return Messages ?? []
    } catch (error) {
      throw this.error(error, 'ReceiveMessage')
    }
  }

  /** Sets the visibility of messages (0: visible again now). Messages already gone are skipped. */
  async changeVisibility(url: string, receipts: readonly string[], seconds: number): Promise<void> {
    for (let i = 0; i < receipts.length; i += MAX_BATCH_ENTRIES) {
      const entries = receipts.slice(i, i + MAX_BATCH_ENTRIES).map((ReceiptHandle, n) => ({ Id: String(n), ReceiptHandle, VisibilityTimeout: seconds }))
      try {
        await this.client.send(new this.sdk.ChangeMessageVisibilityBatchCommand({ QueueUrl: url, Entries: entries }))
      } catch (error) {
        throw this.error(error, 'ChangeMessageVisibility')
      }
    }
  }

  async delete(url: string, receipts: readonly string[]): Promise<void> {
    for (let i = 0; i < receipts.length; i += MAX_BATCH_ENTRIES) {
      const entries = receipts.slice(i, i + MAX_BATCH_ENTRIES).map((ReceiptHandle, n) => ({ Id: String(n), ReceiptHandle }))
      try {
        const { Failed } = await this.client.send(new this.sdk.DeleteMessageBatchCommand({ QueueUrl: url, Entries: entries }))
        const real = (Failed ?? []).filter((f) => !/ReceiptHandleIsInvalid|not.*exist/i.test(`${f.Code} ${f.Message}`))
        if (real.length > 0) throw new Error(`${real[0]!.Code}: ${real[0]!.Message}`)
      } catch (error) {
        throw this.error(error, 'DeleteMessage')
      }
    }
  }

  /**
   * Sends entries (at most 10 per request, within 256 KiB), retrying the entries SQS failed on its
   * side. Resolves with, per entry, its MessageId or the error that stopped it.
   *
   * On a FIFO queue, SQS orders a message group by arrival: requests carrying the same group must not
   * overlap. Entries go to lanes by group (a group always to the same lane), each lane sends its requests
   * one after another — also across calls, so a later call's messages of a group queue behind an earlier
   * call's — and the lanes run side by side: one group is sent in order, many groups at once.
   */
  async sendAll(url: string, entries: OutgoingMessage[]): Promise<Array<{ messageId?: string; error?: WalError }>> {
    const out: Array<{ messageId?: string; error?: WalError }> = entries.map(() => ({}))
    const fifo = entries.some((e) => e.MessageGroupId !== undefined)
    const lanes = new Map<number, number[][]>()
    const open = new Map<number, { batch: number[]; bytes: number }>()
    entries.forEach((entry, i) => {
      const size = messageBytes(entry.MessageBody, entry.MessageAttributes ?? {})
      if (size > MAX_MESSAGE_BYTES) {
        out[i] = {
          error: new InvalidRecordError(`the message would be ${formatBytes(size)}, above SQS's ${formatBytes(MAX_MESSAGE_BYTES)} limit`, {
            code: 'WAL_PAYLOAD_TOO_LARGE',
            suggestions: ['split the payload, or keep large payloads elsewhere and send a reference'],
          }),
        }
        return
      }
      // Standard queues: one lane, whose batches go out SEND_CONCURRENCY at a time.
      const lane = fifo ? partitionForKey(entry.MessageGroupId ?? '', FIFO_LANES) : 0
      const batches = lanes.get(lane) ?? []
      lanes.set(lane, batches)
      let current = open.get(lane)
      if (!current || current.batch.length === MAX_BATCH_ENTRIES || current.bytes + size > MAX_MESSAGE_BYTES) {
        current = { batch: [], bytes: 0 }
        open.set(lane, current)
        batches.push(current.batch)
      }
      current.batch.push(i)
      current.bytes += size
    })
    if (!fifo) {
      const batches = lanes.get(0) ?? []
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < batches.length) await this.sendBatch(url, entries, batches[next++]!, out)
      }
      await Promise.all(Array.from({ length: Math.min(SEND_CONCURRENCY, batches.length) }, worker))
      return out
    }
    await Promise.all(
      [...lanes].map(([lane, batches]) => {
        const id = `${url}\u0000${lane}`
        const sent = (this.laneTails.get(id) ?? Promise.resolve()).then(async () => {
          for (const batch of batches) await this.sendBatch(url, entries, batch, out)
        })
        const tail = sent.catch(() => undefined)
        this.laneTails.set(id, tail)
        void tail.then(() => {
          if (this.laneTails.get(id) === tail) this.laneTails.delete(id)
        })
        return sent
      }),
    )
    return out
  }

  /** FIFO: per queue and lane, the end of what is being sent, for the next send of that lane to follow. */
  private readonly laneTails = new Map<string, Promise<void>>()

  private async sendBatch(url: string, entries: readonly OutgoingMessage[], indexes: number[], out: Array<{ messageId?: string; error?: WalError }>): Promise<void> {
    let pending = indexes
    for (let attempt = 1; pending.length > 0; attempt++) {
      let response
      try {
        response = await this.client.send(new this.sdk.SendMessageBatchCommand({ QueueUrl: url, Entries: pending.map((i) => ({ ...entries[i]!, Id: String(i) })) }))
      } catch (error) {
        const failure = this.error(error, 'SendMessageBatch', { unknownOutcome: true })
        for (const i of pending) out[i] = { error: failure }
        return
      }
      for (const ok of response.Successful ?? []) out[Number(ok.Id)] = { messageId: ok.MessageId }
      // FIFO: the last of each message group this request got into the queue. A failed entry before it
      // cannot be sent again: it would land behind a later message of its group, out of order.
      const lastSent = new Map<string, number>()
      for (const ok of response.Successful ?? []) {
        const group = entries[Number(ok.Id)]!.MessageGroupId
        if (group !== undefined) lastSent.set(group, Math.max(lastSent.get(group) ?? -1, Number(ok.Id)))
      }
      const retry: number[] = []
      for (const failed of response.Failed ?? []) {
        const i = Number(failed.Id)
        const group = entries[i]!.MessageGroupId
        if (!failed.SenderFault && group !== undefined && (lastSent.get(group) ?? -1) > i) {
          out[i] = {
            error: this.error(
              Object.assign(new Error(`${failed.Code ?? 'Error'}: ${failed.Message ?? ''}; not sent again, as a later message of its group (the same key) went through in the same request, and a retry would land behind it`), {
                name: failed.Code ?? 'Error',
                $fault: 'server',
              }),
              'SendMessageBatch',
            ),
          }
        } else if (!failed.SenderFault && attempt < ENTRY_TRIES) retry.push(i)
        else {
          out[i] = {
            error: failed.SenderFault
              ? new InvalidRecordError(`SQS rejected the message: ${failed.Code}: ${failed.Message}`, { code: 'WAL_SQS_REJECTED' })
              : this.error(Object.assign(new Error(failed.Message ?? failed.Code), { name: failed.Code ?? 'Error', $fault: 'server' }), 'SendMessageBatch'),
          }
        }
      }
      // In the order they were given: a message group's entries go again in its order.
      pending = retry.sort((a, b) => a - b)
      if (pending.length > 0) await sleep(100 * 2 ** (attempt - 1))
    }
  }

  close(): void {
    this.client.destroy()
  }
}

export class SqsLog implements LogBackend {
  private constructor(
    readonly settings: NamespaceSettings,
    readonly queues: SqsQueues,
    private readonly stateDir: string,
  ) {}

  get namespace(): string {
    return this.settings.name
  }

  get partitions(): number {
    return this.queues.settings.shards
  }

  get sqs(): SqsLogSettings {
    return this.queues.settings
  }

  static async open(settings: NamespaceSettings, options: { stateDir: string }): Promise<SqsLog> {
    const queues = await SqsQueues.open(settings.sqs!)
    try {
      // Every shard queue must exist (ns init creates them); their URLs are needed anyway.
      await Promise.all(queues.names.shards.map((name) => queues.url(name)))
      return new SqsLog(settings, queues, options.stateDir)
    } catch (error) {
      queues.close()
      throw error
    }
  }

  /** The shard of a key. */
  shardOf(key: string): number {
    return this.partitions === 1 ? 0 : partitionForKey(key, this.partitions)
  }

  private store: SqsStateStore | undefined

  /** The namespace's state store (see state-store.ts); undefined when none was made and `create` is false. */
  stateStore(create: boolean): SqsStateStore | undefined {
    this.store ??= SqsStateStore.open(SqsStateStore.pathOf(this.stateDir, this.namespace), create)
    return this.store
  }

  /**
   * Appends: plain mutations are sent to their shard queue; a transaction's parts are stored in the state
   * store (not sent), and its marker is sent once the store has every part it counts.
   */
  async append(mutations: readonly Mutation[], options: AppendOptions = {}): Promise<AppendResult[]> {
    const nowMs = Date.now()
    const results: AppendResult[] = new Array(mutations.length)
    const parts: number[] = []
    const markers: number[] = []
    const byShard = new Map<number, number[]>()
    mutations.forEach((m, i) => {
      const txn = txnOf(m)
      if (txn !== undefined && !txn.marker) return void parts.push(i)
      if (txn?.marker) markers.push(i)
      const shard = this.shardOf(m.key)
      const list = byShard.get(shard)
      if (list) list.push(i)
      else byShard.set(shard, [i])
    })
    if (parts.length > 0) {
      const refused = this.stateStore(true)!.putParts(
        parts.map((i) => {
          const m = mutations[i]!
          const role = txnOf(m)!
          return { txn: role.id, seq: role.marker ? -1 : role.seq, envelope: encodeEnvelope(m), partition: this.shardOf(role.id) }
        }),
        nowMs,
        this.settings.txnTimeoutMs,
      )
      parts.forEach((i, n) => {
        const m = mutations[i]!
        const why = refused[n]
        results[i] = { id: m.id, partition: this.shardOf(m.key), offset: -1, duplicate: false, error: why === undefined ? undefined : new InvalidRecordError(why, { code: 'WAL_TXN_REFUSED' }) }
      })
    }
    // A marker commits its transaction in the store first; one the store refuses is not sent.
    const committed: string[] = []
    for (const i of markers) {
      const m = mutations[i]!
      const role = txnOf(m) as { id: string; parts: number | null }
      const outcome = this.stateStore(true)!.commit(role.id, role.parts, encodeEnvelope(m), nowMs)
      if ('why' in outcome) {
        results[i] = { id: m.id, partition: this.shardOf(m.key), offset: -1, duplicate: false, error: new InvalidRecordError(outcome.why, { code: 'WAL_TXN_REFUSED' }) }
        const shard = byShard.get(this.shardOf(m.key))!
        shard.splice(shard.indexOf(i), 1)
      } else committed.push(role.id)
    }
    await Promise.all(
      [...byShard].filter(([, indexes]) => indexes.length > 0).map(async ([shard, indexes]) => {
        const queue = await this.queues.shard(shard)
        const entries = indexes.map((i) => {
          const m = mutations[i]!
          const delayMs = m.notBeforeMs === null ? 0 : m.notBeforeMs - nowMs
          return this.outgoing(m, { fifo: this.sqs.fifo, delaySeconds: delayMs > 0 ? Math.min(delayMs / 1000, this.sqs.maxNativeDelaySeconds, MAX_DELAY_SECONDS) : 0 }, nowMs)
        })
        const sent = await this.queues.sendAll(queue.url, entries)
        sent.forEach((s, n) => {
          const m = mutations[indexes[n]!]!
          results[indexes[n]!] = { id: m.id, partition: shard, offset: -1, duplicate: false, queue: queue.name, messageId: s.messageId, error: s.error }
        })
      }),
    )
    for (const i of markers) {
      const error = results[i]!.error
      // Not sent for certain: the transaction is open again (and aborted if no marker comes in time).
      if (error !== undefined && !(error instanceof DurabilityUnknownError) && committed.includes(txnOf(mutations[i]!)!.id)) this.store!.uncommit(txnOf(mutations[i]!)!.id)
    }
    if (!options.perEntryErrors) {
      const failed = results.find((r) => r.error)
      if (failed) throw failed.error
    }
    return results
  }

  /**
   * A mutation as a message of this namespace: as it is when it fits in SQS's 256 KiB, else with its
   * payload stored in the state store as chunks and a reference in its place (PAYLOAD_REF_HEADER).
   */
  outgoing(mutation: Mutation, options: EncodeOptions, nowMs = Date.now()): OutgoingMessage {
    const message = encodeMessage(mutation, options)
    if (messageBytes(message.MessageBody, message.MessageAttributes ?? {}) <= MAX_MESSAGE_BYTES) return message
    const value = mutation.payload.encoding === 'json' ? Buffer.from(mutation.payload.json) : Buffer.from(mutation.payload.bytes.buffer, mutation.payload.bytes.byteOffset, mutation.payload.bytes.byteLength)
    const { sha, chunks } = this.stateStore(true)!.putPayload(value, nowMs)
    const headers = headerMap(mutation.headers)
    headers[PAYLOAD_REF_HEADER] = sha
    headers[PAYLOAD_ENCODING_HEADER] = mutation.payload.encoding
    const payload = { encoding: 'json' as const, json: JSON.stringify({ walPayloadRef: `sha256:${sha}`, bytes: value.length, chunks }) }
    return encodeMessage({ ...mutation, headers, payload }, options)
  }

  /** A received message as a record, its payload put together from the state store when it is kept there. */
  decode(message: Message, source: MessageSource): LogRecord {
    return this.expand(decodeMessage(message, source), message.Body ?? '', source.queue)
  }

  private expand(record: LogRecord, body: string, where: string): LogRecord {
    const sha = record.poison ? undefined : record.headers[PAYLOAD_REF_HEADER]
    if (sha === undefined) return record
    const poison = (why: string): LogRecord =>
      poisonRecord({
        id: record.id,
        key: record.key,
        namespace: record.namespace,
        partition: record.partition,
        offset: record.offset,
        appendedAtMs: record.appendedAtMs,
        location: where,
        raw: Buffer.from(body, 'utf8'),
        error: `the payload of ${record.id} in ${where} is kept in the state store as chunks, and they do not add up: ${why}`,
      })
    const store = this.stateStore(false)
    if (store === undefined) return poison(`this state directory has no state store for namespace "${this.namespace}" (producers and consumers of large payloads must share it)`)
    const found = store.getPayload(sha, this.settings.maxPayloadBytes)
    if ('why' in found) return poison(found.why)
    const headers = headerMap(record.headers)
    const encoding = headers[PAYLOAD_ENCODING_HEADER]
    delete headers[PAYLOAD_REF_HEADER]
    delete headers[PAYLOAD_ENCODING_HEADER]
    try {
      const payload = encoding === 'base64' ? { encoding: 'base64' as const, bytes: found.value } : { encoding: 'json' as const, json: checkedJson(new TextDecoder('utf-8', { fatal: true }).decode(found.value)) }
      return { ...record, headers, payload }
    } catch (error) {
      return poison((error as Error).message)
    }
  }

  /** A transaction as the state store holds it: its parts, and its marker once committed. */
  async transaction(id: string): Promise<TxnInfo | undefined> {
    const txn = this.stateStore(false)?.transaction(id)
    if (txn === undefined) return undefined
    const record = (envelope: string, seq: number): LogRecord => {
      const m = decodeEnvelopeLine(envelope, { namespace: this.namespace, forceNamespace: true, nowMs: txn.openedAtMs })
      return { ...m, partition: this.shardOf(m.key), offset: seq, appendedAtMs: txn.openedAtMs }
    }
    const marker = txn.marker === null ? null : record(txn.marker, -1)
    return {
      id: txn.id,
      state: txn.state,
      openedAtMs: txn.openedAtMs,
      committedAtMs: txn.committedAtMs,
      abortedAtMs: txn.abortedAtMs,
      partCount: txn.parts.length,
      parts: txn.parts.map((p) => ({ seq: p.seq, record: record(p.envelope, p.seq) })),
      marker: marker === null ? null : { ...marker, offset: 0, appendedAtMs: txn.committedAtMs ?? marker.appendedAtMs },
    }
  }

  async marks(): Promise<PartitionMark[]> {
    return Promise.all(
      this.queues.names.shards.map(async (_, shard) => {
        const queue = await this.queues.shard(shard)
        const a = await this.queues.attributes(queue.url, ['ApproximateNumberOfMessages'])
        return { partition: shard, low: 0, high: Number(a.ApproximateNumberOfMessages ?? 0) }
      }),
    )
  }

  async offsetsForTime(): Promise<Map<number, number>> {
    return new Map(this.queues.names.shards.map((_, shard) => [shard, 0]))
  }

  /**
   * A peek: per shard, receives what is visible, holding it hidden until the shard was read through,
   * then makes it visible again. With `until`, at most that many per shard; with `follow`, peeks again
   * and again, printing only messages not seen yet.
   */
  async *read(options: ReadOptions): AsyncIterable<LogRecord> {
    const seen = new Set<string>()
    // `--from end`: what is queued now is only noted, so that following prints what comes after.
    const silent = new Set([...options.from].filter(([, position]) => position > 0).map(([shard]) => shard))
    for (;;) {
      for (const shard of options.from.keys()) {
        if (options.signal?.aborted) return
        const queue = await this.queues.shard(shard)
        const limit = options.until?.get(shard) ?? Infinity
        const held: string[] = []
        let given = 0
        try {
          while (given < limit && !options.signal?.aborted) {
            const messages = await this.queues.receive(queue.url, { max: Math.min(MAX_BATCH_ENTRIES, Math.max(1, limit - given)), visibilitySeconds: PEEK_HOLD_SECONDS, waitSeconds: 0 })
            if (messages.length === 0) break
            for (const message of messages) held.push(message.ReceiptHandle!)
            const fresh = messages.filter((m) => !seen.has(m.MessageId!))
            if (fresh.length === 0) break
            for (const message of fresh) {
              seen.add(message.MessageId!)
              if (silent.has(shard)) continue
              given++
              yield this.decode(message, { queue: queue.name, shard, namespace: this.namespace })
              if (given >= limit) break
            }
          }
        } finally {
          await this.queues.changeVisibility(queue.url, held, 0).catch(() => undefined)
        }
        silent.delete(shard)
      }
      if (!options.follow || options.signal?.aborted) return
      await sleep(1000, undefined, { signal: options.signal }).catch(() => undefined)
    }
  }

  async info(): Promise<LogInfo> {
    let records = 0
    const urls: string[] = []
    for (let shard = 0; shard < this.partitions; shard++) {
      const queue = await this.queues.shard(shard)
      urls.push(queue.url)
      const a = await this.queues.attributes(queue.url, ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'])
      records += Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) + Number(a.ApproximateNumberOfMessagesDelayed ?? 0)
    }
    return { location: urls.join(', '), records, sizeBytes: null }
  }

  async consumerStore(target: string): Promise<ConsumerStore> {
    const { SqsConsumerState } = await import('./consumer-state.js')
    return new SqsConsumerState(this, target)
  }

  async deadLetterQueue(): Promise<DeadLetterQueue> {
    const { SqsDeadLetterQueue } = await import('./dead-letter-queue.js')
    return SqsDeadLetterQueue.open(this, join(this.stateDir, 'sqs-audit', `${this.namespace}.ndjson`))
  }

  /** SQS cannot look a message up by anything: `wal explain` finds nothing in an SQS namespace's queues. */
  async find(): Promise<LogRecord[]> {
    return []
  }

  async close(): Promise<void> {
    this.queues.close()
    this.store?.close()
    this.store = undefined
  }
}
