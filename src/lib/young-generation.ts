/**
 * Peak memory that does not grow with the log. V8 doubles its young generation whenever enough objects
 * have survived its minor collections since the last doubling, counted over the whole run: a long read
 * or write (`wal tail` of a million records, `consume --until-idle`, `produce` of a big file) ends with
 * the largest young generation V8 allows (128 MiB on a 64-bit machine) although what wal holds at any
 * time is a page of records. Its ceiling (--max-semi-space-size) is fixed when Node starts; its growth
 * factor is read at each doubling, so once the young generation is YOUNG_GENERATION_CAP_BYTES it is
 * held there. Called once per page read or chunk of input: a look at the heap's spaces, then nothing.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'

/** Big enough that a page of records dies young (a smaller one promotes it, and the old space churns). */
export const YOUNG_GENERATION_CAP_BYTES = 16 * 1024 * 1024

/**
 * The young generation of a process that sends each mutation through a network driver: cassandra-driver
 * makes about 16 kB of short-lived objects per request, and at 16 MB V8 collects every few milliseconds,
 * each time copying the requests in flight (a quarter of the consumer's CPU goes to it). At 32 MB a
 * consume to Cassandra spends about 6% less CPU (bench/cassandra-apply.js); still a fixed ceiling.
 */
export const NETWORK_YOUNG_GENERATION_CAP_BYTES = 32 * 1024 * 1024

let cap = YOUNG_GENERATION_CAP_BYTES
let held = false

export function holdYoungGeneration(): void {
  if (held) return
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name !== 'new_space') continue
    if (space.space_size < cap) return
    setFlagsFromString('--semi-space-growth-factor=1')
    held = true
  }
}

/** Lets the young generation grow to `bytes` (never lowers the ceiling): V8 doubles it again as it needs. */
export function allowYoungGeneration(bytes: number): void {
  if (bytes <= cap) return
  cap = bytes
  if (held) {
    setFlagsFromString('--semi-space-growth-factor=2')
    held = false
  }
}
