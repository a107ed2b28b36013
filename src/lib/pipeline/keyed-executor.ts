/**
 * Runs tasks with at most `concurrency` at once, and one at a time per key, in the order they were
 * given: different keys make progress in parallel while each key keeps its order, also while one of its
 * mutations is being retried.
 */
export class KeyedExecutor {
  private readonly queues = new Map<string, Array<() => Promise<void>>>()
  private readonly ready: string[] = []
  /** Per key, what its running task left to run again later (see `again`). */
  private readonly later = new Map<string, { after: Promise<unknown>; task: () => Promise<void> }>()
  private running = 0
  private pending = 0
  private idleWaiters: Array<() => void> = []

  constructor(private readonly concurrency: number) {}

  /** Tasks given and not finished. */
  get size(): number {
    return this.pending
  }

  /** Tasks of this key queued or running. */
  queued(key: string): number {
    return this.queues.get(key)?.length ?? 0
  }

  /** Whether a task of this key is queued or running. */
  has(key: string): boolean {
    return this.queues.has(key)
  }

  push(key: string, task: () => Promise<void>): void {
    this.pending++
    const queue = this.queues.get(key)
    if (queue) {
      queue.push(task)
      return
    }
    this.queues.set(key, [task])
    this.ready.push(key)
    this.pump()
  }

  /**
   * Called by the running task of `key`: once it returns, `task` takes its place at the head of the
   * key's queue and runs when `after` settles. The key's later tasks wait behind it (still counted in
   * `size`), while other keys use the freed slot.
   */
  again(key: string, after: Promise<unknown>, task: () => Promise<void>): void {
    this.later.set(key, { after, task })
  }

  private pump(): void {
    while (this.running < this.concurrency && this.ready.length > 0) {
      const key = this.ready.shift()!
      const task = this.queues.get(key)![0]!
      this.running++
      // One reaction for either outcome (not .catch().finally(): two more promises per task).
      const finished = this.finisher(key)
      task().then(finished, finished)
    }
  }

  /**
   * The reaction that ends a task of this key. Made here, not as a named arrow in pump: the build keeps
   * function names (esbuild keepNames), and a named closure costs an Object.defineProperty per task.
   */
  private finisher(key: string): () => void {
    return () => this.finished(key)
  }

  private finished(key: string): void {
    this.running--
    const queue = this.queues.get(key)!
    const later = this.later.get(key)
    if (later !== undefined) {
      this.later.delete(key)
      queue[0] = later.task
      const resume = (): void => {
        this.ready.push(key)
        this.pump()
      }
      later.after.then(resume, resume)
      this.pump()
      return
    }
    this.pending--
    queue.shift()
    if (queue.length > 0) this.ready.push(key)
    else this.queues.delete(key)
    if (this.pending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
    this.pump()
  }

  /** Resolves when every task given so far has finished. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }
}
