/**
 * Consumer state of a Kafka namespace's target, kept in the cluster so consumers can run on any machine:
 * - partitions and committed offsets: the target's consumer group (see group-member.ts);
 * - the schedule: a compacted topic, in the partition of the log a mutation came from, which the owner of
 *   that partition loads into memory when it takes the partition on;
 * - dead letters: the DLQ topic; history: a time-limited topic, keyed by mutation id.
 *
 * A commit first writes schedule changes, dead letters and history (acks from all in-sync replicas), then
 * commits offsets through the group. A crash between the two redoes the mutations after the old offsets:
 * schedule entries are keyed by their place in the log and dead letters are recognized by theirs, so the
 * redo replaces rather than duplicates them.
 */
import { decodeEnvelopeLine, encodeEnvelope, type Mutation } from '../../envelope/envelope.js'
import { riding } from '../../kafka/client.js'
import type { AbortedTxn, ClaimResult, ConsumerCommit, ConsumerStore, HistoryEvent, ScheduledMutation, ShardRequest } from '../backend.js'
import { MAX_PARTITIONS } from '../../config/schema.js'
import { partitionForKey } from '../partitioner.js'
import { GroupMember } from './group-member.js'
import type { KafkaLog } from './kafka-log.js'
import type { OutgoingRecord } from './record-codec.js'
import { consumerGroupId } from './topics.js'
import { dlqRecord } from './dead-letter-queue.js'
import { chunkedRecords } from './record-codec.js'
import { setTimeout as sleep } from 'node:timers/promises'

import { newMutationId } from '../../envelope/id.js'
import { BackendUnavailableError, ConflictError } from '../../errors.js'
import { ackReset, endReset, readReset, requestReset, REQUEST_TTL_MS } from './reset-requests.js'
import { leasedError } from '../leased.js'

/** A scheduled entry's seq: its place in the log (offset, partition), unique per target. */
export function scheduleSeq(partition: number, offset: number): number {
  return offset * MAX_PARTITIONS + partition
}

interface Entry {
  seq: number
  partition: number
  key: string
  dueAtMs: number
  mutation: Mutation
}

interface StoredEntry {
  dueAtMs: number
  envelope: string
}

/** How long `offsets reset --force` waits for the running consumers to carry a reset out. */
const FORCED_RESET_WAIT_MS = 60_000

/** How long the first group join may take before the consumer gives up. */
const JOIN_TIMEOUT_MS = 60_000

export class KafkaConsumerStore implements ConsumerStore {
  private member: Promise<GroupMember> | undefined
  private memberShard: string | undefined
  /** The schedule of the partitions loaded, by seq. */
  private readonly entries = new Map<number, Entry>()
  private readonly loaded = new Set<number>()
  private historyPartitions: Promise<number> | undefined
  /** Left the group for good (release of every partition). */
  private left = false

  constructor(
    private readonly log: KafkaLog,
    readonly target: string,
  ) {}

  private get groupId(): string {
    return consumerGroupId(this.log.topics.log, this.target)
  }

  async claim(_owner: string, shard: ShardRequest, ttlMs: number): Promise<ClaimResult> {
    // A heartbeat still under way when the consumer let go must not join the group again.
    if (this.left) return { owned: [], wanted: [] }
    if (!this.member) {
      this.memberShard = JSON.stringify(shard)
      const { kafkajs, kafka } = this.log.connection
      this.member = GroupMember.join({ kafkajs, kafka, groupId: this.groupId, topic: this.log.topics.log, shard, sessionTimeoutMs: Math.max(6000, ttlMs) })
      this.member.catch(() => (this.member = undefined))
    } else if (this.memberShard !== JSON.stringify(shard)) throw new Error('a consumer store serves one shard request')
    let member: GroupMember
    try {
      member = await this.member
      await member.ready(JOIN_TIMEOUT_MS)
    } catch (error) {
      throw this.log.connection.error(error)
    }
    const owned = member.partitions()
    for (const p of [...this.loaded]) {
      if (owned.includes(p)) continue
      // Given up: its schedule is someone else's now, and is loaded afresh if it comes back.
      this.loaded.delete(p)
      for (const [seq, e] of this.entries) if (e.partition === p) this.entries.delete(seq)
    }
    const all = Array.from({ length: this.log.partitions }, (_, p) => p)
    // While the group rebalances nothing is held, yet the shard's share is not known to be empty: wanting
    // every partition keeps an --until-idle consumer from calling it a day in the middle of a rebalance.
    const wanted = !member.settled() ? all : shard === 'auto' ? owned : all.filter((p) => p % shard.count === shard.index)
    const generation = member.generation()
    return { owned, wanted, epochs: new Map(owned.map((p) => [p, generation])) }
  }

  async release(_owner: string, partitions?: readonly number[]): Promise<void> {
    // Partitions move when the group rebalances; only leaving the group gives them all up.
    if (partitions !== undefined) return
    this.left = true
    const member = this.member
    this.member = undefined
    if (member) await member.then((m) => m.leave()).catch(() => undefined)
  }

  async committed(partitions: readonly number[]): Promise<Map<number, number>> {
    try {
      const [offsets] = await riding(() => this.log.connection.admin.fetchOffsets({ groupId: this.groupId, topics: [this.log.topics.log] }))
      const marks = await this.log.marks()
      const found = new Map((offsets?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
      return new Map(partitions.map((p) => [p, (found.get(p) ?? -1) >= 0 ? found.get(p)! : marks[p]!.low]))
    } catch (error) {
      throw this.log.connection.error(error)
    }
  }

  async commit(_owner: string, change: ConsumerCommit): Promise<{ lost: number[] }> {
    // Fenced before anything is written: a partition not held now, or held under a later generation than
    // the committer took it in (a rebalance in between), is refused with the whole commit.
    const current = await this.member
    const held = current?.partitions() ?? []
    const stale = [...new Set([...change.epochs.keys(), ...change.offsets.keys()])].filter(
      (p) => !held.includes(p) || change.epochs.get(p) !== current?.generation(),
    )
    if (stale.length > 0) return { lost: stale }
    const { topics } = this.log
    const schedule: OutgoingRecord[] = []
    const changed: Entry[] = []
    const removed: number[] = []
    for (const s of change.schedule) {
      const entry = { seq: scheduleSeq(s.partition, s.offset), partition: s.partition, key: s.mutation.key, dueAtMs: s.dueAtMs, mutation: s.mutation }
      changed.push(entry)
      schedule.push(this.scheduleRecord(entry))
    }
    for (const s of change.reschedule) {
      const old = this.entries.get(s.seq)
      if (!old) continue
      const entry = { ...old, dueAtMs: s.dueAtMs, mutation: s.mutation }
      changed.push(entry)
      schedule.push(this.scheduleRecord(entry))
    }
    for (const seq of change.unschedule) {
      const old = this.entries.get(seq)
      if (!old) continue
      removed.push(seq)
      schedule.push({ key: `${this.target}/${seq}`, value: null as unknown as string, headers: {}, timestamp: String(Date.now()), partition: old.partition })
    }
    const batch = []
    if (schedule.length > 0) batch.push({ topic: topics.schedule, messages: schedule })
    if (change.deadLetters.length > 0) {
      // A large mutation goes to the DLQ as it went to the log: in chunks, put together when read.
      const limit = await this.log.connection.maxMessageBytes(topics.dlq)
      batch.push({ topic: topics.dlq, messages: change.deadLetters.flatMap((d) => chunkedRecords(dlqRecord(this.target, d), limit)) })
    }
    if (change.history.length > 0) {
      batch.push({
        topic: topics.history,
        messages: change.history.map((h) => ({ key: h.mutationId, value: JSON.stringify({ target: this.target, ...h }), headers: {}, timestamp: String(Math.floor(h.atMs)) })),
      })
    }
    if (batch.length > 0) await this.log.connection.send(batch)
    for (const e of changed) this.entries.set(e.seq, e)
    for (const seq of removed) this.entries.delete(seq)
    const member = await this.member
    const owned = member?.partitions() ?? []
    const offsets = new Map([...change.offsets].filter(([p]) => owned.includes(p)))
    const lost = [...change.offsets.keys()].filter((p) => !owned.includes(p))
    if (offsets.size > 0 && member) {
      let committed: boolean
      try {
        committed = await member.commit(offsets)
      } catch (error) {
        throw this.log.connection.error(error)
      }
      if (!committed) return { lost: [...change.offsets.keys()] }
    }
    return { lost }
  }

  private scheduleRecord(e: Entry): OutgoingRecord {
    const stored: StoredEntry = { dueAtMs: e.dueAtMs, envelope: encodeEnvelope(e.mutation) }
    return { key: `${this.target}/${e.seq}`, value: JSON.stringify(stored), headers: {}, timestamp: String(Date.now()), partition: e.partition }
  }

  /** Reads the schedule of these partitions (this target's entries) as it is in the topic now. */
  private async readSchedule(partitions: readonly number[]): Promise<Entry[]> {
    const latest = new Map<string, { partition: number; value: Buffer | null }>()
    const prefix = `${this.target}/`
    for await (const { partition, record } of this.log.connection.snapshot(this.log.topics.schedule, { partitions })) {
      const key = record.key?.toString('utf8')
      if (key === undefined || !key.startsWith(prefix)) continue
      latest.set(key, { partition, value: record.value })
    }
    const entries: Entry[] = []
    for (const [key, { partition, value }] of latest) {
      if (value === null) continue
      const stored = JSON.parse(value.toString('utf8')) as StoredEntry
      const mutation = decodeEnvelopeLine(stored.envelope, { namespace: this.log.namespace, forceNamespace: true, nowMs: Date.now() })
      entries.push({ seq: Number(key.slice(prefix.length)), partition, key: mutation.key, dueAtMs: stored.dueAtMs, mutation })
    }
    return entries
  }

  private async load(partitions: readonly number[]): Promise<void> {
    const missing = partitions.filter((p) => !this.loaded.has(p))
    if (missing.length === 0) return
    for (const e of await this.readSchedule(missing)) this.entries.set(e.seq, e)
    for (const p of missing) this.loaded.add(p)
  }

  /** The loaded entries of these partitions that are first of their key. */
  private heads(partitions: readonly number[]): Entry[] {
    const wanted = new Set(partitions)
    const first = new Map<string, Entry>()
    for (const e of this.entries.values()) {
      if (!wanted.has(e.partition)) continue
      const head = first.get(e.key)
      if (!head || e.seq < head.seq) first.set(e.key, e)
    }
    return [...first.values()]
  }

  async scheduledKeyCounts(partitions: readonly number[]): Promise<Map<string, number>> {
    await this.load(partitions)
    const wanted = new Set(partitions)
    const counts = new Map<string, number>()
    for (const e of this.entries.values()) if (wanted.has(e.partition)) counts.set(e.key, (counts.get(e.key) ?? 0) + 1)
    return counts
  }

  async dueScheduled(partitions: readonly number[], nowMs: number, limit: number, skipKeys: ReadonlySet<string>): Promise<ScheduledMutation[]> {
    await this.load(partitions)
    return this.heads(partitions)
      .filter((e) => e.dueAtMs <= nowMs && !skipKeys.has(e.key))
      .sort((a, b) => a.dueAtMs - b.dueAtMs || a.seq - b.seq)
      .slice(0, limit)
      .map((e) => ({ seq: e.seq, partition: e.partition, dueAtMs: e.dueAtMs, mutation: structuredClone(e.mutation) }))
  }

  async nextDueAtMs(partitions: readonly number[]): Promise<number | null> {
    await this.load(partitions)
    let next: number | null = null
    for (const e of this.heads(partitions)) if (next === null || e.dueAtMs < next) next = e.dueAtMs
    return next
  }

  private historyPartitionCount(): Promise<number> {
    this.historyPartitions ??= this.log.connection.partitionCount(this.log.topics.history).then((n) => n ?? 1)
    return this.historyPartitions
  }

  async story(mutationId: string): Promise<{ history: HistoryEvent[]; scheduled: Array<{ dueAtMs: number; attempts: number }> }> {
    const history: HistoryEvent[] = []
    // History records are keyed by mutation id: Kafka's partitioner put them all in one partition.
    const partition = partitionForKey(mutationId, await this.historyPartitionCount())
    for await (const { record } of this.log.connection.snapshot(this.log.topics.history, { partitions: [partition] })) {
      if (record.key?.toString('utf8') !== mutationId || record.value === null) continue
      const { target, ...event } = JSON.parse(record.value.toString('utf8')) as HistoryEvent & { target: string }
      if (target === this.target) history.push(event)
    }
    const all = Array.from({ length: this.log.partitions }, (_, p) => p)
    const scheduled = (await this.readSchedule(all))
      .filter((e) => e.mutation.id === mutationId)
      .sort((a, b) => a.seq - b.seq)
      .map((e) => ({ dueAtMs: e.dueAtMs, attempts: e.mutation.attempts }))
    return { history, scheduled }
  }

  async counts(): Promise<{ scheduled: number; deadLetters: number }> {
    const all = Array.from({ length: this.log.partitions }, (_, p) => p)
    const scheduled = (await this.readSchedule(all)).length
    const dlq = await this.log.deadLetterQueue()
    const deadLetters = (await dlq.entries({ target: this.target })).length
    return { scheduled, deadLetters }
  }

  /**
   * Transactions recorded open in the state topic for longer than `timeoutMs`, whose marker would be in a
   * partition this consumer holds: aborted (their writer fenced), with one txn-aborted DLQ entry filed
   * for this target (see transactions.ts).
   */
  async abortExpiredTransactions(nowMs: number, timeoutMs: number): Promise<AbortedTxn[]> {
    const held = (await this.member)?.partitions() ?? []
    if (held.length === 0 || this.left) return []
    return this.log.transactions.abortExpired(this.target, held, nowMs, timeoutMs)
  }

  async leases(): Promise<Array<{ partition: number; owner: string; expiresAtMs: number }>> {
    const { admin, kafkajs } = this.log.connection
    try {
      const { groups } = await riding(() => admin.describeGroups([this.groupId]))
      const leases: Array<{ partition: number; owner: string; expiresAtMs: number }> = []
      for (const m of groups[0]?.members ?? []) {
        if (m.memberAssignment.length === 0) continue
        const decoded = kafkajs.AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
        for (const p of decoded?.assignment[this.log.topics.log] ?? []) {
          // Held while the member heartbeats: the group coordinator tracks it, no fixed end.
          leases.push({ partition: p, owner: `${m.clientId}@${m.clientHost}`, expiresAtMs: Date.now() })
        }
      }
      return leases.sort((a, b) => a.partition - b.partition)
    } catch (error) {
      throw this.log.connection.error(error)
    }
  }

  /**
   * Sets the group's committed offsets. Kafka itself refuses to while the group has members, and an
   * admin cannot fence a member out of its generation: with members running, the reset is refused, or
   * (force) asked of them and waited for.
   */
  async resetOffsets(offsets: ReadonlyMap<number, number>, options: { force: boolean }): Promise<{ fenced: Array<{ partition: number; owner: string }> }> {
    const { admin } = this.log.connection
    const members = async (): Promise<Array<{ partition?: number; owner: string }>> => {
      const { groups } = await riding(() => admin.describeGroups([this.groupId]))
      const held: Array<{ partition?: number; owner: string }> = await this.leases()
      const idle = (groups[0]?.members ?? []).map((m) => `${m.clientId}@${m.clientHost}`).filter((owner) => !held.some((h) => h.owner === owner))
      return [...held, ...idle.map((owner) => ({ owner }))]
    }
    let live: Array<{ partition?: number; owner: string }>
    try {
      live = await members()
    } catch (error) {
      throw this.log.connection.error(error)
    }
    if (live.length > 0) {
      if (!options.force) throw leasedError(this.target, live)
      return this.resetThroughConsumers(offsets, live)
    }
    try {
      await riding(() =>
        admin.setOffsets({ groupId: this.groupId, topic: this.log.topics.log, partitions: [...offsets].map(([partition, offset]) => ({ partition, offset: String(offset) })) }),
      )
    } catch (error) {
      // A consumer joined between the look and the reset: Kafka refused it whole.
      const joined = await members().catch(() => [])
      if (joined.length > 0) throw leasedError(this.target, joined)
      throw this.log.connection.error(error)
    }
    return { fenced: [] }
  }

  /** --force with members running: the reset is asked of them (see reset-requests.ts), and waited for. */
  private async resetThroughConsumers(
    offsets: ReadonlyMap<number, number>,
    live: ReadonlyArray<{ partition?: number; owner: string }>,
  ): Promise<{ fenced: Array<{ partition: number; owner: string }> }> {
    const held = new Map(live.flatMap((l) => (l.partition === undefined ? [] : [[l.partition, l.owner] as const])))
    const unheld = [...offsets.keys()].filter((p) => !held.has(p))
    if (unheld.length > 0) {
      throw leasedError(this.target, live, {
        why: `partition${unheld.length === 1 ? '' : 's'} ${unheld.join(',')} ${unheld.length === 1 ? 'is' : 'are'} held by no member, and Kafka moves a group's offsets only while it has none`,
        suggestion: 'reset only the partitions the running consumers hold (--to-offset P:O,…), or stop them and reset again',
      })
    }
    const id = newMutationId(Date.now())
    const { log, target } = this
    try {
      await requestReset(log, target, { id, offsets: new Map(offsets), expiresAtMs: Date.now() + REQUEST_TTL_MS })
      const deadline = Date.now() + FORCED_RESET_WAIT_MS
      let done = new Set<number>()
      while (Date.now() < deadline) {
        done = (await readReset(log, target)).done
        if ([...offsets.keys()].every((p) => done.has(p))) break
        await sleep(500)
      }
      await endReset(log, target, id)
      const missing = [...offsets.keys()].filter((p) => !done.has(p))
      if (missing.length > 0) {
        throw new BackendUnavailableError(
          `target "${target}": the running consumers did not carry out the reset within ${FORCED_RESET_WAIT_MS / 1000} s; partitions ${missing.join(',')} were not reset${done.size > 0 ? `, partitions ${[...done].join(',')} were` : ''}`,
          { code: 'WAL_OFFSETS_RESET_INCOMPLETE', details: { target, missing, done: [...done] }, suggestions: ['check that the consumers are healthy (wal daemon status), or stop them and reset again'] },
        )
      }
    } catch (error) {
      throw error instanceof BackendUnavailableError || error instanceof ConflictError ? error : this.log.connection.error(error)
    }
    return { fenced: [...offsets.keys()].map((partition) => ({ partition, owner: held.get(partition)! })) }
  }

  async pendingReset(owned: readonly number[]): Promise<{ id: string; offsets: Map<number, number> } | null> {
    if (owned.length === 0) return null
    let open: Awaited<ReturnType<typeof readReset>>
    try {
      open = await readReset(this.log, this.target)
    } catch (error) {
      throw this.log.connection.error(error)
    }
    if (open.request === null) return null
    const offsets = new Map([...open.request.offsets].filter(([p]) => owned.includes(p) && !open.done.has(p)))
    return offsets.size === 0 ? null : { id: open.request.id, offsets }
  }

  async applyReset(id: string, offsets: ReadonlyMap<number, number>): Promise<void> {
    const member = await this.member
    if (!member) return
    try {
      // Not held any more (a rebalance meanwhile): whoever holds them now carries the request out.
      if (await member.commit(offsets)) await ackReset(this.log, this.target, id, [...offsets.keys()])
    } catch (error) {
      throw this.log.connection.error(error)
    }
  }

  async close(): Promise<void> {
    await this.release('')
  }
}
