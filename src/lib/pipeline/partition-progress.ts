/**
 * How far a consumer got in each partition it works on: the next offset to read, the offsets read but
 * not done yet, and what was last committed. The offset to commit is the lowest one not done, so a
 * commit never passes a mutation still in flight, whatever order mutations of different keys finish in.
 */
export class PartitionProgress {
  /** Next offset to read. */
  private readonly next = new Map<number, number>()
  /** Read and not done. */
  private readonly open = new Map<number, OpenOffsets>()
  private readonly committed = new Map<number, number>()

  /** Starts tracking a partition from its committed offset. */
  start(partition: number, offset: number): void {
    this.next.set(partition, offset)
    this.open.set(partition, new OpenOffsets())
  }

  /** Stops tracking a partition (given up, or taken over by another consumer). */
  forget(partition: number): void {
    this.next.delete(partition)
    this.open.delete(partition)
    this.committed.delete(partition)
  }

  /** Next offset to read in a partition (0 if unknown). */
  position(partition: number): number {
    return this.next.get(partition) ?? 0
  }

  /** A mutation was read and handed on. */
  read(partition: number, offset: number): void {
    this.next.set(partition, offset + 1)
    this.open.get(partition)?.add(offset)
  }

  /** A mutation read earlier is done (applied, dead-lettered or moved to the schedule). */
  done(partition: number, offset: number): void {
    this.open.get(partition)?.delete(offset)
  }

  /** Whether mutations read from a partition are still in flight. */
  busy(partition: number): boolean {
    return (this.open.get(partition)?.size ?? 0) > 0
  }

  /** The offsets to commit now: per partition, the lowest not done; only those that moved. */
  toCommit(): Map<number, number> {
    const offsets = new Map<number, number>()
    for (const [p, open] of this.open) {
      const offset = open.size > 0 ? open.lowest() : this.next.get(p)
      if (offset !== undefined && offset !== this.committed.get(p)) offsets.set(p, offset)
    }
    return offsets
  }

  /** Records a successful commit. */
  committedAt(partition: number, offset: number): void {
    this.committed.set(partition, offset)
  }
}

/**
 * The offsets of one partition read and not done yet, in increasing order, in a ring of typed arrays:
 * the lowest not done is at the head. (A Set of them, an add and a delete for every mutation, made V8
 * reallocate its table over and over in the old generation, where it is a Set that lives the whole
 * run: garbage that only a full collection frees, so a long consume's memory grew with the log.)
 */
class OpenOffsets {
  private offsets = new Float64Array(64)
  private done = new Uint8Array(64)
  private head = 0
  /** Entries from the head, done or not. */
  private count = 0
  /** Entries not done. */
  size = 0

  add(offset: number): void {
    if (this.count > 0 && offset <= this.at(this.count - 1)) return this.insert(offset)
    if (this.count === this.offsets.length) this.grow()
    const i = (this.head + this.count) & (this.offsets.length - 1)
    this.offsets[i] = offset
    this.done[i] = 0
    this.count++
    this.size++
  }

  delete(offset: number): void {
    const mask = this.offsets.length - 1
    // Binary search over the entries from the head, in increasing order.
    let lo = 0
    let hi = this.count - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const value = this.at(mid)
      if (value < offset) lo = mid + 1
      else if (value > offset) hi = mid - 1
      else {
        const i = (this.head + mid) & mask
        if (this.done[i] === 1) return
        this.done[i] = 1
        this.size--
        while (this.count > 0 && this.done[this.head] === 1) {
          this.head = (this.head + 1) & mask
          this.count--
        }
        return
      }
    }
  }

  /** The lowest offset not done (size > 0). */
  lowest(): number {
    return this.offsets[this.head]!
  }

  private at(index: number): number {
    return this.offsets[(this.head + index) & (this.offsets.length - 1)]!
  }

  private grow(): void {
    const offsets = new Float64Array(this.offsets.length * 2)
    const done = new Uint8Array(offsets.length)
    const mask = this.offsets.length - 1
    for (let k = 0; k < this.count; k++) {
      offsets[k] = this.offsets[(this.head + k) & mask]!
      done[k] = this.done[(this.head + k) & mask]!
    }
    this.offsets = offsets
    this.done = done
    this.head = 0
  }

  /** An offset at or below the highest read (not how a partition is read): the open ones, sorted again. */
  private insert(offset: number): void {
    const open: number[] = [offset]
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) & (this.offsets.length - 1)
      if (this.done[i] === 0 && this.offsets[i] !== offset) open.push(this.offsets[i]!)
    }
    open.sort((a, b) => a - b)
    this.head = 0
    this.count = 0
    this.size = 0
    for (const value of open) this.add(value)
  }
}
