/** The one wording of "a live consumer holds what an operator's change would move", for every backend. */
import { ConflictError } from '../errors.js'

/** An offsets reset refused: live consumers hold the target's partitions (partition undefined: a member holding none yet). */
export function leasedError(target: string, held: ReadonlyArray<{ partition?: number; owner: string }>, extra?: { why: string; suggestion: string }): ConflictError {
  const owners = [...new Set(held.map((h) => h.owner))]
  const partitions = held.flatMap((h) => (h.partition === undefined ? [] : [h.partition]))
  const what = partitions.length === 0 ? 'its consumer group has running members' : `partition${partitions.length === 1 ? '' : 's'} ${partitions.join(',')} ${partitions.length === 1 ? 'is' : 'are'} held by a running consumer`
  return new ConflictError(`target "${target}": ${what} (${owners.join(', ')}); nothing was changed${extra ? `; ${extra.why}` : ''}`, {
    code: 'WAL_OFFSETS_LEASED',
    details: { target, partitions, owners },
    suggestions: [extra?.suggestion ?? 'stop that consumer first, or add --force to fence it: it commits nothing more for these partitions and continues from the new offsets'],
  })
}
