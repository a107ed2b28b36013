/** Number formatting for messages. */

/** `1048576` → `1 MiB`, for messages. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${+(bytes / 1024).toFixed(1)} KiB`
  return `${+(bytes / 1024 / 1024).toFixed(1)} MiB`
}

/** `1 entry`, `2 entries`: a count with its noun in the right number. */
export function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`
}
