/**
 * Runs tasks with at most `concurrency` at once, and one at a time per key, in the order they were
 * given: different keys make progress in parallel while each key keeps its order, also while one of its
 * mutations is being retried. A task may hold several keys (a transaction's marker holds the keys of its
 * parts): it runs once it is first in the queue of every one of them, and holds them all until it ends.
 */

/** A task holding several keys: queued under each, run once it heads all of them. */
interface Joint {
  task: () => Promise<void>
  keys: readonly string[]
  /** Keys whose queue it does not head yet. */
  waiting: number
}

type Entry = (() => Promise<void>) | Joint

export class KeyedExecutor {
  private readonly queues = new Map<string, Entry[]>()
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

  /** Whether every task given and not finished waits in waitOutside, or queues behind one that does. */
  get onlyWaitingOutside(): boolean {
    return this.pending > 0 && this.running === 0 && this.ready.length === 0
  }

  /** Whether a task of this key is queued or running. */
  has(key: string): boolean {
    return this.queues.has(key)
  }

  push(key: string, task: () => Promise<void>): void {
    this.pending++
    this.enqueue(key, task)
    this.pump()
  }

  /** A task that holds every one of `keys` (each once) while it runs, after the tasks given before it for any of them. */
  pushAll(keys: readonly string[], task: () => Promise<void>): void {
    const unique = [...new Set(keys)]
    if (unique.length === 1) return this.push(unique[0]!, task)
    this.pending++
    const joint: Joint = { task, keys: unique, waiting: unique.length }
    for (const key of unique) this.enqueue(key, joint)
    this.pump()
  }

  private enqueue(key: string, entry: Entry): void {
    const queue = this.queues.get(key)
    if (queue) {
      queue.push(entry)
      return
    }
    this.queues.set(key, [entry])
    this.ready.push(key)
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
      const head = this.queues.get(key)![0]!
      if (typeof head === 'function') {
        this.running++
        // One reaction for either outcome (not .catch().finally(): two more promises per task).
        const finished = this.finisher(key)
        head().then(finished, finished)
        continue
      }
      // A joint task heads this key's queue: it runs once it heads the queues of all its keys.
      if (--head.waiting > 0) continue
      this.running++
      const finished = (): void => this.jointFinished(head)
      head.task().then(finished, finished)
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
    if (this.runAgainLater(key)) return
    this.pending--
    this.next(key)
    if (this.pending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
    this.pump()
  }

  private jointFinished(joint: Joint): void {
    this.running--
    const key = joint.keys.find((k) => this.later.has(k))
    if (key !== undefined && this.runAgainLater(key, joint)) return
    this.pending--
    for (const key of joint.keys) this.next(key)
    if (this.pending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
    this.pump()
  }

  /**
   * What the task of `key` that just ended left to run again (see `again`): it keeps its place at the
   * head of its key's queue (of each of its keys, for a joint task) and runs once its wait is over.
   */
  private runAgainLater(key: string, joint?: Joint): boolean {
    const later = this.later.get(key)
    if (later === undefined) return false
    this.later.delete(key)
    if (joint === undefined) this.queues.get(key)![0] = later.task
    else {
      joint.task = later.task
      // It heads every queue of its keys still: one more look from pump runs it.
      joint.waiting = 1
    }
    const resume = (): void => {
      this.ready.push(key)
      this.pump()
    }
    later.after.then(resume, resume)
    this.pump()
    return true
  }

  /** The head of a key's queue is done: the next one (if any) is ready. */
  private next(key: string): void {
    const queue = this.queues.get(key)!
    queue.shift()
    if (queue.length > 0) this.ready.push(key)
    else this.queues.delete(key)
  }

  /**
   * A running task waits on `wait` for other tasks (not for its keys, which it keeps): its slot goes to
   * them meanwhile, so a waiting task cannot starve the ones it waits for (with concurrency 1 too).
   */
  async waitOutside<T>(wait: Promise<T>): Promise<T> {
    this.running--
    this.pump()
    try {
      return await wait
    } finally {
      this.running++
    }
  }

  /** Resolves when every task given so far has finished. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }
}
