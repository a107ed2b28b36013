/**
 * Partition ownership on Kafka: a member of the target's consumer group. The broker's group protocol is
 * the lease: membership is kept by heartbeats, a member that dies is dropped after its session timeout,
 * and commits from a member that lost its generation are refused. wal reads with its own partition
 * reader, so the kafkajs consumer here never delivers records: it joins, heartbeats and commits.
 *
 * One assignor serves both kinds of shard in the same group: `--shard I/N` members get the partitions p
 * with p % N == I (the first such member, if two ask for the same shard); `auto` members share the rest
 * round-robin.
 */
import type { KafkaModule } from '../../kafka/client.js'
import type { ShardRequest } from '../backend.js'

const ASSIGNOR = 'WalShardAssigner'

export interface ShardMetadata {
  shard: string
}

export function shardText(shard: ShardRequest): string {
  return shard === 'auto' ? 'auto' : `${shard.index}/${shard.count}`
}

/** Which member gets which partitions; members in a stable order. Exported for unit tests. */
export function assignShards(partitions: readonly number[], members: ReadonlyArray<{ memberId: string; shard: string }>): Map<string, number[]> {
  const sorted = [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0))
  const assignment = new Map<string, number[]>(sorted.map((m) => [m.memberId, []]))
  const taken = new Set<number>()
  const claimed = new Set<string>()
  for (const m of sorted) {
    const match = /^(\d+)\/(\d+)$/.exec(m.shard)
    if (!match || claimed.has(m.shard)) continue
    claimed.add(m.shard)
    const [index, count] = [Number(match[1]), Number(match[2])]
    for (const p of partitions) {
      if (p % count === index && !taken.has(p)) {
        taken.add(p)
        assignment.get(m.memberId)!.push(p)
      }
    }
  }
  const autos = sorted.filter((m) => m.shard === 'auto')
  if (autos.length > 0) {
    partitions.filter((p) => !taken.has(p)).forEach((p, i) => assignment.get(autos[i % autos.length]!.memberId)!.push(p))
  }
  return assignment
}

export interface GroupMemberOptions {
  kafkajs: KafkaModule
  kafka: import('kafkajs').Kafka
  groupId: string
  topic: string
  shard: ShardRequest
  sessionTimeoutMs: number
}

export class GroupMember {
  private assigned: number[] = []
  private joined = false
  /** Assignments received: each rebalance is a new generation of the group. */
  private joins = 0
  private failure: unknown
  private readonly firstJoin: Promise<void>

  private constructor(
    private readonly consumer: import('kafkajs').Consumer,
    private readonly topic: string,
    firstJoin: Promise<void>,
  ) {
    this.firstJoin = firstJoin
  }

  static async join(options: GroupMemberOptions): Promise<GroupMember> {
    const { kafkajs, topic, shard } = options
    const { MemberMetadata, MemberAssignment } = kafkajs.AssignerProtocol
    const assigner: import('kafkajs').PartitionAssigner = ({ cluster }) => ({
      name: ASSIGNOR,
      version: 1,
      async assign({ members }) {
        const metadata = (cluster as unknown as { findTopicPartitionMetadata(t: string): Array<{ partitionId: number }> }).findTopicPartitionMetadata(topic)
        const partitions = metadata.map((m) => m.partitionId).sort((a, b) => a - b)
        const decoded = members.map((m) => {
          const data = MemberMetadata.decode(m.memberMetadata)
          let shardOf = 'auto'
          try {
            shardOf = (JSON.parse(data?.userData.toString('utf8') || '{}') as ShardMetadata).shard ?? 'auto'
          } catch {
            // A member of another wal version: treat it as auto.
          }
          return { memberId: m.memberId, shard: shardOf }
        })
        const assignment = assignShards(partitions, decoded)
        return [...assignment].map(([memberId, list]) => ({
          memberId,
          memberAssignment: MemberAssignment.encode({ version: 1, assignment: { [topic]: list }, userData: Buffer.alloc(0) }),
        }))
      },
      protocol({ topics }) {
        return { name: ASSIGNOR, metadata: MemberMetadata.encode({ version: 1, topics, userData: Buffer.from(JSON.stringify({ shard: shardText(shard) })) }) }
      },
    })
    const consumer = options.kafka.consumer({
      groupId: options.groupId,
      partitionAssigners: [assigner],
      sessionTimeout: options.sessionTimeoutMs,
      rebalanceTimeout: Math.max(options.sessionTimeoutMs, 10_000),
      heartbeatInterval: Math.max(500, Math.floor(options.sessionTimeoutMs / 5)),
      // Paused for good: with nothing to fetch, the consumer loop heartbeats at this pace.
      maxWaitTimeInMs: 250,
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5000 },
    })
    let resolveJoin!: () => void
    let rejectJoin!: (error: unknown) => void
    const firstJoin = new Promise<void>((resolve, reject) => {
      resolveJoin = resolve
      rejectJoin = reject
    })
    const member = new GroupMember(consumer, topic, firstJoin)
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      member.assigned = [...((event.payload.memberAssignment as Record<string, number[]>)[topic] ?? [])].sort((a, b) => a - b)
      member.joined = true
      member.joins++
      resolveJoin()
    })
    consumer.on(consumer.events.REBALANCING, () => {
      // Until the group settles again, nothing is ours.
      member.assigned = []
      member.joined = false
    })
    consumer.on(consumer.events.CRASH, (event) => {
      member.failure = event.payload.error
      member.assigned = []
      rejectJoin(event.payload.error)
    })
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => undefined })
    consumer.pause([{ topic }])
    return member
  }

  /** Waits for the first assignment (at most `timeoutMs`). */
  async ready(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the consumer group did not settle within ${timeoutMs / 1000} s`)), timeoutMs)
    })
    try {
      await Promise.race([this.firstJoin, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** The partitions this member holds now (none while the group rebalances). */
  partitions(): number[] {
    if (this.failure !== undefined) throw this.failure
    return this.joined ? this.assigned : []
  }

  /**
   * The assignment this member holds now, counted from 1: it grows with every rebalance, so it is the
   * fencing epoch of the partitions (a partition held again after a rebalance may have moved meanwhile).
   */
  generation(): number {
    return this.joins
  }

  /** False while the group rebalances: what this member holds is not known then. */
  settled(): boolean {
    return this.joined
  }

  /** Commits next offsets, fenced by the group generation; false when the member no longer holds them. */
  async commit(offsets: ReadonlyMap<number, number>): Promise<boolean> {
    if (offsets.size === 0) return true
    try {
      await this.consumer.commitOffsets([...offsets].map(([partition, offset]) => ({ topic: this.topic, partition, offset: String(offset) })))
      return true
    } catch (error) {
      const type = (error as { type?: string }).type
      if (type === 'REBALANCE_IN_PROGRESS' || type === 'ILLEGAL_GENERATION' || type === 'UNKNOWN_MEMBER_ID' || type === 'FENCED_INSTANCE_ID') return false
      throw error
    }
  }

  async leave(): Promise<void> {
    await this.consumer.disconnect().catch(() => undefined)
  }
}
