/**
 * Applies that arrive while a send is in flight go together in the next one: a target whose backend takes
 * batches (a Kafka topic, an SQS queue) sends in rounds, and each apply resolves only once the round
 * carrying it was accepted.
 */
export interface SendRoundsOptions<T> {
  /** Items per round, at most. */
  maxRound: number
  /** Sends one round; may answer an error (or undefined) per item, in order, for partial failures. */
  send(items: T[]): Promise<ReadonlyArray<unknown> | void>
  /** How a failure (the whole round's, or one item's) is reported to the apply that waits. */
  classify(error: unknown): unknown
}

export class SendRounds<T> {
  private waiting: Array<{ item: T; resolve: () => void; reject: (error: unknown) => void }> = []
  private sending = false

  constructor(private readonly options: SendRoundsOptions<T>) {}

  /** Resolves once the item's round was sent and the item accepted. */
  push(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject })
      if (!this.sending) void this.sendWaiting()
    })
  }

  /** Sends everything waiting, one round at a time, until nothing is left. */
  private async sendWaiting(): Promise<void> {
    this.sending = true
    try {
      while (this.waiting.length > 0) {
        const round = this.waiting.splice(0, this.options.maxRound)
        try {
          const errors = await this.options.send(round.map((r) => r.item))
          round.forEach((r, i) => {
            const error = errors?.[i]
            if (error === undefined || error === null) r.resolve()
            else r.reject(this.options.classify(error))
          })
        } catch (error) {
          const classified = this.options.classify(error)
          for (const r of round) r.reject(classified)
        }
      }
    } finally {
      this.sending = false
    }
  }
}
