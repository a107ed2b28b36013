/**
 * How far a consumer got in each partition it works on: the next offset to read, the offsets read but
 * not done yet, and what was last committed. The offset to commit is the lowest one not done, so a
 * commit never passes a mutation still in flight, whatever order mutations of different keys finish in.
 */
export class PartitionProgress {
  private readonly partitions = new Map<number, Tracked>()

  /** Starts tracking a partition from its committed offset. */
  start(partition: number, offset: number): void {
    this.partitions.set(partition, new Tracked(offset))
  }

  /** Stops tracking a partition (given up, or taken over by another consumer). */
  forget(partition: number): void {
    this.partitions.delete(partition)
  }

  /** Next offset to read in a partition (0 if unknown). */
  position(partition: number): number {
    return this.partitions.get(partition)?.next ?? 0
  }

  /** A mutation was read and handed on. */
  read(partition: number, offset: number): void {
    this.partitions.get(partition)?.read(offset)
  }

  /** A mutation read earlier is done (applied, dead-lettered or moved to the schedule). */
  done(partition: number, offset: number): void {
    this.partitions.get(partition)?.done(offset)
  }

  /** Whether mutations read from a partition are still in flight. */
  busy(partition: number): boolean {
    return this.partitions.get(partition)?.busy() ?? false
  }

  /** The offsets to commit now: per partition, the lowest not done; only those that moved. */
  toCommit(): Map<number, number> {
    const offsets = new Map<number, number>()
    for (const [p, tracked] of this.partitions) {
      const offset = tracked.lowestOpen()
      if (offset !== tracked.committed) offsets.set(p, offset)
    }
    return offsets
  }

  /** Records a successful commit. */
  committedAt(partition: number, offset: number): void {
    const tracked = this.partitions.get(partition)
    if (tracked) tracked.committed = offset
  }
}

/**
 * One partition. Offsets are read in increasing order, so those in flight are a queue in that order
 * (`open` from `head` on); nearly all are done in the order read (a page applied as one batch), which
 * only moves `head`. One done ahead of an earlier one waits in `doneEarly` until the queue reaches it.
 */
class Tracked {
  /** Next offset to read. */
  next: number
  committed: number | undefined
  private open: number[] = []
  private head = 0
  private readonly doneEarly = new Set<number>()

  constructor(offset: number) {
    this.next = offset
  }

  read(offset: number): void {
    this.next = offset + 1
    const last = this.head < this.open.length ? this.open[this.open.length - 1]! : -1
    if (offset > last) {
      this.open.push(offset)
      return
    }
    // Not after the last one read (no log hands records on so, but the queue must stay in order): put in its place.
    let at = this.open.length
    while (at > this.head && this.open[at - 1]! > offset) at--
    if (at > this.head && this.open[at - 1] === offset) return
    this.open.splice(at, 0, offset)
    this.doneEarly.delete(offset)
  }

  done(offset: number): void {
    if (this.head === this.open.length) return
    if (this.open[this.head] !== offset) {
      // Done ahead of an earlier offset (another key's mutation is still in flight), or not open at all.
      if (offset > this.open[this.head]! && offset <= this.open[this.open.length - 1]!) this.doneEarly.add(offset)
      return
    }
    this.head++
    while (this.head < this.open.length && this.doneEarly.delete(this.open[this.head]!)) this.head++
    if (this.head === this.open.length) {
      this.open = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.open.length) {
      this.open = this.open.slice(this.head)
      this.head = 0
    }
  }

  busy(): boolean {
    return this.head < this.open.length
  }

  /** The lowest offset read and not done, or the next to read when none is in flight. */
  lowestOpen(): number {
    return this.head < this.open.length ? this.open[this.head]! : this.next
  }
}
