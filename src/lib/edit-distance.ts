/** "Did you mean": how far apart two names are, for suggesting the known one a typo was meant to be. */

/** Levenshtein distance: the single-character insertions, deletions and substitutions from a to b. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]!
}

/** The known name closest to `name` (case aside), if any is within `maxDistance` edits. */
export function closestName(name: string, known: readonly string[], maxDistance = 2): string | undefined {
  const lower = name.toLowerCase()
  const scored = known.map((k) => ({ k, d: editDistance(lower, k.toLowerCase()) })).filter((s) => s.d <= maxDistance)
  return scored.sort((x, y) => x.d - y.d)[0]?.k
}
