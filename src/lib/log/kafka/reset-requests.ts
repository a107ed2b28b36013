/**
 * `wal offsets reset --force` on a Kafka namespace. Kafka moves a group's offsets only while the group
 * has no members, and an admin cannot take a member's partitions away: so the reset is asked of the
 * running consumers themselves, in the namespace's compacted state topic. Each consumer, at its next
 * heartbeat, drops the partitions it holds that the request names (nothing more of its own is committed
 * for them), commits the new offsets through the group and says so per partition; it then takes them on
 * again from there. A request lives until the command that made it ends it, or for REQUEST_TTL_MS.
 */
import type { KafkaLog } from './kafka-log.js'

/** A request no command ended (it crashed) is not carried out after this long. */
export const REQUEST_TTL_MS = 120_000

export interface ResetRequest {
  id: string
  offsets: Map<number, number>
  expiresAtMs: number
}

interface StoredRequest {
  id: string
  offsets?: Array<[number, number]>
  expiresAtMs?: number
  done?: boolean
}

const requestKey = (target: string): string => `reset:${target}`
const doneKey = (target: string, id: string, partition: number): string => `reset-done:${target}:${id}:${partition}`

async function send(log: KafkaLog, messages: Array<{ key: string; value: string }>): Promise<void> {
  const timestamp = String(Date.now())
  await log.connection.send([{ topic: log.topics.state, messages: messages.map((m) => ({ ...m, headers: {}, timestamp })) }])
}

export async function requestReset(log: KafkaLog, target: string, request: ResetRequest): Promise<void> {
  const stored: StoredRequest = { id: request.id, offsets: [...request.offsets], expiresAtMs: request.expiresAtMs }
  await send(log, [{ key: requestKey(target), value: JSON.stringify(stored) }])
}

/** Ends a request: consumers that have not carried it out yet no longer do. */
export async function endReset(log: KafkaLog, target: string, id: string): Promise<void> {
  await send(log, [{ key: requestKey(target), value: JSON.stringify({ id, done: true } satisfies StoredRequest) }])
}

export async function ackReset(log: KafkaLog, target: string, id: string, partitions: readonly number[]): Promise<void> {
  if (partitions.length === 0) return
  await send(
    log,
    partitions.map((p) => ({ key: doneKey(target, id, p), value: '1' })),
  )
}

/** The target's open request (null when none is), and the partitions already done for it. */
export async function readReset(log: KafkaLog, target: string): Promise<{ request: ResetRequest | null; done: Set<number> }> {
  let stored: StoredRequest | undefined
  const acks: Array<{ id: string; partition: number }> = []
  const ackPrefix = `reset-done:${target}:`
  for await (const { record } of log.connection.snapshot(log.topics.state)) {
    const key = record.key?.toString('utf8')
    if (key === undefined || record.value === null) continue
    if (key === requestKey(target)) stored = JSON.parse(record.value.toString('utf8')) as StoredRequest
    else if (key.startsWith(ackPrefix)) {
      const rest = key.slice(ackPrefix.length)
      const at = rest.lastIndexOf(':')
      acks.push({ id: rest.slice(0, at), partition: Number(rest.slice(at + 1)) })
    }
  }
  if (stored === undefined || stored.done || stored.offsets === undefined || (stored.expiresAtMs ?? 0) < Date.now()) return { request: null, done: new Set() }
  const id = stored.id
  return {
    request: { id, offsets: new Map(stored.offsets), expiresAtMs: stored.expiresAtMs! },
    done: new Set(acks.filter((a) => a.id === id).map((a) => a.partition)),
  }
}
