/** Mutation ids: ULIDs, unique and sortable by creation time. */
import { closeSync, openSync, readSync } from 'node:fs'

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** The largest time a ULID holds (48 bits of milliseconds). */
const TIME_MAX = 2 ** 48 - 1

// Random bytes are drawn from the CSPRNG a pool at a time: one call per 1,024 ids' worth rather than
// one per character (what the ulid package did, a tenth of `wal produce`'s time per line).
const pool = new Uint8Array(16 * 1024)
let poolAt = pool.length

/** node:crypto, loaded on first use: loading it costs a one-mutation `wal produce` about 5% of its time. */
function crypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto')
}

/** Fills the pool from the kernel's CSPRNG (/dev/urandom, what node:crypto also draws on), else node:crypto. */
function refill(): void {
  if (process.platform !== 'win32') {
    try {
      const fd = openSync('/dev/urandom', 'r')
      try {
        let filled = 0
        while (filled < pool.length) {
          const read = readSync(fd, pool, filled, pool.length - filled, null)
          if (read <= 0) throw new Error('short read from /dev/urandom')
          filled += read
        }
        return
      } finally {
        closeSync(fd)
      }
    } catch {
      // No /dev/urandom (a chroot, a sandbox): node:crypto below.
    }
  }
  crypto().randomFillSync(pool)
}
/** The random part of the last id, as 16 base-32 digits, and its time. */
const lastRandom = new Uint8Array(16)
let lastTimeMs = -1
/** Character codes of the Crockford digits. */
const DIGIT_CODES = Array.from(CROCKFORD, (c) => c.charCodeAt(0))
/**
 * The last id's characters, as codes: its time (10) then its random part (16). An id is made from them in
 * one String.fromCharCode, a flat string; 26 concatenations made a chain of 26 strings, which SQLite's
 * binding (and the ack line) then had to copy into one (`wal produce` makes one id per line).
 */
const codes: number[] = new Array<number>(26).fill(0x30)

function setTimeCodes(ms: number): void {
  for (let i = 9; i >= 0; i--) {
    codes[i] = DIGIT_CODES[ms % 32]!
    ms = Math.floor(ms / 32)
  }
}

/**
 * A new ULID (time, then 80 random bits); monotonic within this process even when the clock stands
 * still or steps back: within the same (or an earlier) millisecond, the random part of the last id plus one.
 */
export function newMutationId(nowMs: number = Date.now()): string {
  if (!Number.isInteger(nowMs) || nowMs < 0 || nowMs > TIME_MAX) throw new RangeError(`cannot make an id for the time ${nowMs}`)
  if (nowMs > lastTimeMs) {
    if (poolAt === pool.length) {
      refill()
      poolAt = 0
    }
    for (let i = 0; i < 16; i++) codes[10 + i] = DIGIT_CODES[(lastRandom[i] = pool[poolAt + i]! & 31)]!
    poolAt += 16
    lastTimeMs = nowMs
    setTimeCodes(nowMs)
  } else {
    let i = 15
    while (i >= 0 && lastRandom[i] === 31) {
      lastRandom[i] = 0
      codes[10 + i--] = DIGIT_CODES[0]!
    }
    // 2^80 ids in one millisecond: not reachable, but never a repeated id either.
    if (i < 0) throw new RangeError('no more ids in this millisecond')
    codes[10 + i] = DIGIT_CODES[++lastRandom[i]!]!
  }
  return String.fromCharCode.apply(null, codes)
}

/** What a mutation id looks like. */
export const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/

/** A ULID for a record written by another producer: its time from the record, the rest from where it is. */
export function foreignRecordId(topic: string, partition: number, offset: string, timestampMs: number): string {
  let time = ''
  let t = Math.max(0, Math.min(timestampMs, 2 ** 48 - 1))
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time
    t = Math.floor(t / 32)
  }
  const digest = crypto().createHash('sha256').update(`${topic}/${partition}/${offset}`).digest()
  let rest = ''
  for (let i = 0; i < 16; i++) rest += CROCKFORD[digest[i]! % 32]
  return time + rest
}
