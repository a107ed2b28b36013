/**
 * The SQS target: forwards each mutation to a queue, as an SQS namespace's log holds it (the envelope in
 * the body, `wal-*` attributes), so the queue can itself be declared as an SQS namespace and consumed.
 * Applies that arrive while a send is in flight go together in the next SendMessageBatch; each apply
 * still resolves only once SQS accepted its message.
 */
import type { SqsClusterSettings } from '../../config/schema.js'
import type { Mutation } from '../../envelope/envelope.js'
import { BackendUnavailableError, ClusterAccessError, InvalidRecordError, NotFoundError, WalError } from '../../errors.js'
import { encodeMessage, MAX_MESSAGE_BYTES, messageBytes, type OutgoingMessage } from '../../log/sqs/codec.js'
import { SqsQueues } from '../../log/sqs/sqs-log.js'
import { SendRounds } from '../send-rounds.js'
import { forwardedCopy, TargetError, type Target } from '../target.js'
import { formatBytes } from '../../format.js'

export interface SqsTargetOptions {
  name: string
  queue: string
  fifo: boolean
  cluster: SqsClusterSettings
}

/** Messages per round of sends, at most (SendMessageBatch takes 10; several go at once). */
const MAX_ROUND = 500

/** How a failure to send affects the target. */
export function classifySqsError(error: unknown): TargetError {
  if (error instanceof TargetError) return error
  if (error instanceof InvalidRecordError) return new TargetError(error.message, { errorClass: 'fatal', code: error.code, cause: error })
  if (error instanceof ClusterAccessError || error instanceof NotFoundError) return new TargetError(error.message, { errorClass: 'infrastructure', code: error.code, cause: error })
  if (error instanceof BackendUnavailableError && /UNREACHABLE/.test(error.code)) return new TargetError(error.message, { errorClass: 'infrastructure', code: error.code, cause: error })
  if (error instanceof WalError) return new TargetError(error.message, { errorClass: 'retryable', code: error.code, cause: error })
  return new TargetError(String((error as Error).message ?? error), { errorClass: 'retryable', code: 'SQS', cause: error })
}

export class SqsTarget implements Target {
  readonly name: string
  private queues: Promise<{ queues: SqsQueues; url: string }> | undefined
  private readonly rounds = new SendRounds<OutgoingMessage>({
    maxRound: MAX_ROUND,
    send: async (messages) => {
      const { queues, url } = await this.connect()
      return (await queues.sendAll(url, messages)).map((sent) => sent.error)
    },
    classify: classifySqsError,
  })

  /**
   * A standard queue takes a page of mutations (keys with nothing else pending) in the SendMessageBatch
   * calls of one round, 10 messages a call. A message above SQS's limit fails the whole batch before
   * anything is sent, so the consumer's one-at-a-time fallback dead-letters it alone. Not on a FIFO
   * queue: there a message of the batch that failed could have been overtaken by a later one of its
   * group, which the fallback would then re-send only to have SQS drop it as a duplicate.
   */
  readonly applyBatch?: (mutations: readonly Mutation[]) => Promise<void>

  constructor(private readonly options: SqsTargetOptions) {
    this.name = options.name
    if (!options.fifo) this.applyBatch = (mutations) => this.sendBatch(mutations)
  }

  private async sendBatch(mutations: readonly Mutation[]): Promise<void> {
    const messages = new Array<OutgoingMessage>(mutations.length)
    for (let i = 0; i < mutations.length; i++) {
      const message = encodeMessage(forwardedCopy(mutations[i]!), { fifo: false })
      const size = messageBytes(message.MessageBody, message.MessageAttributes ?? {})
      if (size > MAX_MESSAGE_BYTES) throw new TargetError(`the message would be ${formatBytes(size)}, above SQS's ${formatBytes(MAX_MESSAGE_BYTES)} limit`, { errorClass: 'fatal', code: 'WAL_PAYLOAD_TOO_LARGE' })
      messages[i] = message
    }
    return this.rounds.pushAll(messages)
  }

  private connect(): Promise<{ queues: SqsQueues; url: string }> {
    this.queues ??= (async () => {
      const { name, fifo, cluster, queue } = this.options
      const queues = await SqsQueues.open({ cluster, queue, fifo, shards: 1, maxReceiveCount: 1, visibilityTimeoutSeconds: 30, maxNativeDelaySeconds: 900 })
      try {
        return { queues, url: await queues.url(fifo ? `${queue}.fifo` : queue) }
      } catch (error) {
        queues.close()
        throw new TargetError(`target "${name}": ${(error as Error).message}`, { errorClass: 'infrastructure', code: (error as WalError).code ?? 'SQS', cause: error })
      }
    })().catch((error: unknown) => {
      this.queues = undefined
      throw error
    })
    return this.queues
  }

  async apply(mutation: Mutation): Promise<void> {
    // The queue's consumers start their own history and routing; the delay was honoured on the way here.
    const message = encodeMessage(forwardedCopy(mutation), { fifo: this.options.fifo })
    return this.rounds.push(message)
  }

  async close(): Promise<void> {
    const queues = this.queues
    this.queues = undefined
    if (queues) await queues.then((q) => q.queues.close()).catch(() => undefined)
  }
}
