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

/** Items given together (one apply, or a page of them): one promise for all, settled once each was sent. */
interface Entry<T> {
  items: readonly T[]
  /** The first item not yet in a round. */
  taken: number
  /** Items whose round has not answered yet. */
  left: number
  /** The first item (by position) that failed, and why. */
  failed?: { at: number; error: unknown }
  resolve: () => void
  reject: (error: unknown) => void
}

export class SendRounds<T> {
  private waiting: Array<Entry<T>> = []
  private sending = false

  constructor(private readonly options: SendRoundsOptions<T>) {}

  /** Resolves once the item's round was sent and the item accepted. */
  push(item: T): Promise<void> {
    return this.pushAll([item])
  }

  /**
   * Resolves once the rounds carrying the items were sent and every item accepted; else rejects, once all
   * of them answered, with the first item's failure (items of the other rounds may have been accepted).
   * The items go in this order, together, in as few rounds as maxRound allows.
   */
  pushAll(items: readonly T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ items, taken: 0, left: items.length, resolve, reject })
      if (!this.sending) void this.sendWaiting()
    })
  }

  /** Sends everything waiting, one round at a time, until nothing is left. */
  private async sendWaiting(): Promise<void> {
    this.sending = true
    try {
      while (this.waiting.length > 0) {
        // The next maxRound items, and whose each one is.
        const items: T[] = []
        const owners: Array<Entry<T>> = []
        const positions: number[] = []
        let done = 0
        while (items.length < this.options.maxRound && done < this.waiting.length) {
          const entry = this.waiting[done]!
          const end = Math.min(entry.items.length, entry.taken + this.options.maxRound - items.length)
          for (let i = entry.taken; i < end; i++) {
            items.push(entry.items[i]!)
            owners.push(entry)
            positions.push(i)
          }
          entry.taken = end
          if (end === entry.items.length) done++
        }
        this.waiting.splice(0, done)
        let errors: ReadonlyArray<unknown> | void = undefined
        let roundError: unknown
        let roundFailed = false
        try {
          errors = await this.options.send(items)
        } catch (error) {
          roundFailed = true
          roundError = this.options.classify(error)
        }
        for (let i = 0; i < items.length; i++) {
          const entry = owners[i]!
          const error = roundFailed ? roundError : errors?.[i]
          if (error !== undefined && error !== null && (entry.failed === undefined || positions[i]! < entry.failed.at)) {
            entry.failed = { at: positions[i]!, error: roundFailed ? error : this.options.classify(error) }
          }
          if (--entry.left === 0) {
            if (entry.failed === undefined) entry.resolve()
            else entry.reject(entry.failed.error)
          }
        }
      }
    } finally {
      this.sending = false
    }
  }
}
