/**
 * How far a consumer got in each partition it works on: the next offset to read, the offsets read but
 * not done yet, and what was last committed. The offset to commit is the lowest one not done, so a
 * commit never passes a mutation still in flight, whatever order mutations of different keys finish in.
 */
export class PartitionProgress {
  /** Next offset to read. */
  private readonly next = new Map<number, number>()
  /** Read and not done. */
  private readonly open = new Map<number, Set<number>>()
  private readonly committed = new Map<number, number>()

  /** Starts tracking a partition from its committed offset. */
  start(partition: number, offset: number): void {
    this.next.set(partition, offset)
    this.open.set(partition, new Set())
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
    for (const [p, set] of this.open) {
      const offset = set.size > 0 ? Math.min(...set) : this.next.get(p)
      if (offset !== undefined && offset !== this.committed.get(p)) offsets.set(p, offset)
    }
    return offsets
  }

  /** Records a successful commit. */
  committedAt(partition: number, offset: number): void {
    this.committed.set(partition, offset)
  }
}
