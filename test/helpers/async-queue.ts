/** An async iterable the test pushes into: stands in for a service's core stream in view tests. */
export interface AsyncQueue<T> extends AsyncIterable<T> {
  push(value: T): void
  end(): void
  /** Values pushed and not taken yet. */
  readonly size: number
}

export function asyncQueue<T>(): AsyncQueue<T> {
  const values: T[] = []
  let ended = false
  let wake: (() => void) | null = null
  return {
    push(value) {
      values.push(value)
      wake?.()
    },
    get size() {
      return values.length
    },
    end() {
      ended = true
      wake?.()
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (values.length > 0) yield values.shift()!
        else if (ended) return
        else await new Promise<void>((resolve) => (wake = resolve))
      }
    },
  }
}
