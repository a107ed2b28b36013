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

let held = false

export function holdYoungGeneration(): void {
  if (held) return
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name !== 'new_space') continue
    if (space.space_size < YOUNG_GENERATION_CAP_BYTES) return
    setFlagsFromString('--semi-space-growth-factor=1')
    held = true
  }
}
