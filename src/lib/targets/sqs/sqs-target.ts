/**
 * The SQS target: forwards each mutation to a queue, as an SQS namespace's log holds it (the envelope in
 * the body, `wal-*` attributes), so the queue can itself be declared as an SQS namespace and consumed.
 * Applies that arrive while a send is in flight go together in the next SendMessageBatch; each apply
 * still resolves only once SQS accepted its message.
 */
import type { SqsClusterSettings } from '../../config/schema.js'
import type { Mutation } from '../../envelope/envelope.js'
import { BackendUnavailableError, ClusterAccessError, InvalidRecordError, NotFoundError, WalError } from '../../errors.js'
import { encodeMessage, type OutgoingMessage } from '../../log/sqs/codec.js'
import { SqsQueues } from '../../log/sqs/sqs-log.js'
import { SendRounds } from '../send-rounds.js'
import { forwardedCopy, TargetError, type Target } from '../target.js'

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

  constructor(private readonly options: SqsTargetOptions) {
    this.name = options.name
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
