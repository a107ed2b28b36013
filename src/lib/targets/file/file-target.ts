/**
 * The NDJSON target: appends each mutation's envelope as one line to a file (or stdout with "-"), in
 * the format `wal produce` reads back. Lines are buffered (encoded a batch at a time) and written (and
 * fsync'd, for a file) on `flush()`, which the consumer calls before committing its offsets.
 *
 * A file is written and fsync'd on libuv's thread pool, not on the event loop: a slow or stalled disk
 * holds up this target's commits only, while lease heartbeats, other targets and signals go on.
 */
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { fstat, fsync, ftruncate, write } from 'node:fs'
import { promisify } from 'node:util'
import { dirname } from 'node:path'

import { encodeEnvelope, type Mutation } from '../../envelope/envelope.js'
import { TargetError, type Target } from '../target.js'

const writeAsync = promisify(write)
const fsyncAsync = promisify(fsync)
const fstatAsync = promisify(fstat)
const ftruncateAsync = promisify(ftruncate)

const APPLIED: Promise<void> = Promise.resolve()

/**
 * Bytes per encoded chunk, at most about: a page of large payloads (a thousand of a megabyte each)
 * would otherwise be one buffer that big. A longer line gets a chunk of its own.
 */
const CHUNK_BYTES = 8 * 1024 * 1024
/** The smallest buffer a chunk starts with. */
const MIN_CHUNK_BYTES = 64 * 1024

/**
 * Lines of text (one per item, each ending with a newline) as UTF-8 chunks of at most about
 * CHUNK_BYTES. Each line is written into the chunk as it is made: no string of the whole page is
 * built, flattened and encoded again (that was most of what a page cost this target).
 */
function encodeLines<T>(items: readonly T[], line: (item: T) => string): Buffer[] {
  const chunks: Buffer[] = []
  let chunk: Buffer | undefined
  let at = 0
  for (let i = 0; i < items.length; i++) {
    const text = line(items[i]!)
    // Room for the worst case: three bytes of UTF-8 per UTF-16 unit, and the newline.
    const need = text.length * 3 + 1
    if (chunk === undefined || at + need > chunk.length) {
      if (chunk !== undefined && at > 0 && (chunk.length >= CHUNK_BYTES || at + need > CHUNK_BYTES)) {
        chunks.push(fitted(chunk, at))
        chunk = undefined
        at = 0
      }
      // The page's lines are mostly alike: room for the rest of them at this one's length, or twice
      // what the chunk had, within CHUNK_BYTES (a line longer than that gets a chunk of its own).
      const wanted = Math.max(need, Math.min(CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, (chunk?.length ?? 0) * 2, Math.ceil(text.length * 1.1 + 1) * (items.length - i))))
      const grown = Buffer.allocUnsafe(wanted)
      if (chunk !== undefined) chunk.copy(grown, 0, 0, at)
      chunk = grown
    }
    at += chunk.write(text, at)
    chunk[at++] = 0x0a
  }
  if (chunk !== undefined && at > 0) chunks.push(fitted(chunk, at))
  return chunks
}

/** The first `length` bytes of a chunk; copied out when that is under half of it, so a buffered chunk holds no more memory than its bytes. */
function fitted(chunk: Buffer, length: number): Buffer {
  return length * 2 < chunk.length ? Buffer.from(chunk.subarray(0, length)) : chunk.subarray(0, length)
}

export interface FileTargetOptions {
  name: string
  /** A file path, or "-" for stdout. */
  path: string
}

export class FileTarget implements Target {
  readonly name: string
  private readonly fd: number
  private readonly stdout: boolean
  /** Only a regular file can be fsync'd: a device (/dev/null), a FIFO or a socket refuses it (EINVAL). */
  private readonly durable: boolean
  /** Lines applied one at a time, not yet encoded. */
  private lines: string[] = []
  /** What flush() writes next, encoded: a batch's lines per chunk, in the order they were applied. */
  private chunks: Buffer[] = []

  constructor(options: FileTargetOptions) {
    this.name = options.name
    this.stdout = options.path === '-'
    try {
      if (!this.stdout) mkdirSync(dirname(options.path), { recursive: true })
      this.fd = this.stdout ? 1 : openSync(options.path, 'a')
      this.durable = !this.stdout && fstatSync(this.fd).isFile()
    } catch (error) {
      throw new TargetError(`cannot open ${options.path} for appending: ${(error as Error).message}`, {
        errorClass: 'infrastructure',
        code: (error as NodeJS.ErrnoException).code ?? 'OPEN_FAILED',
        cause: error,
      })
    }
  }

  /** Buffers the line: nothing to wait for, so one settled promise serves every apply (not one each). */
  apply(mutation: Mutation): Promise<void> {
    try {
      this.lines.push(encodeEnvelope(mutation))
    } catch (error) {
      return Promise.reject(error)
    }
    return APPLIED
  }

  /** Buffers the lines of every mutation, encoded at once (a page of small strings, not one big one at flush), or (one cannot be encoded) of none. */
  applyBatch(mutations: readonly Mutation[]): Promise<void> {
    let encoded: Buffer[]
    try {
      encoded = encodeLines(mutations, encodeEnvelope)
    } catch (error) {
      return Promise.reject(error)
    }
    this.sealLines()
    for (const chunk of encoded) this.chunks.push(chunk)
    return APPLIED
  }

  /** Moves the lines applied one at a time into chunks of their own, keeping their place. */
  private sealLines(): void {
    if (this.lines.length === 0) return
    for (const chunk of encodeLines(this.lines, (line) => line)) this.chunks.push(chunk)
    this.lines = []
  }

  async flush(): Promise<void> {
    this.sealLines()
    if (this.chunks.length === 0) return
    const chunks = this.chunks
    this.chunks = []
    let written = 0
    let startSize: number | undefined
    try {
      if (this.stdout) {
        // stdout may be a pipe or terminal the thread pool cannot write to in one go: written here.
        for (const bytes of chunks) for (let at = 0; at < bytes.length; ) at += writeSync(this.fd, bytes, at)
      } else {
        startSize = (await fstatAsync(this.fd)).size
        for (const bytes of chunks) {
          for (let at = 0; at < bytes.length; ) {
            const { bytesWritten } = await writeAsync(this.fd, bytes, at, bytes.length - at)
            at += bytesWritten
            written += bytesWritten
          }
        }
        if (this.durable) await fsyncAsync(this.fd)
      }
    } catch (error) {
      // Kept for the next flush: nothing is committed past lines not known to be on disk.
      this.chunks = [...chunks, ...this.chunks]
      // A write cut short (a full disk) leaves half a line: cut it off, unless another process
      // appended meanwhile (then the next flush's copy follows it; delivery is at least once).
      if (startSize !== undefined && written > 0) {
        const size = await fstatAsync(this.fd).then((st) => st.size, () => undefined)
        if (size === startSize + written) await ftruncateAsync(this.fd, startSize).catch(() => undefined)
      }
      throw new TargetError(`cannot append to the file: ${(error as Error).message}`, {
        errorClass: 'infrastructure',
        code: (error as NodeJS.ErrnoException).code ?? 'WRITE_FAILED',
        cause: error,
      })
    }
  }

  async close(): Promise<void> {
    await this.flush()
    if (!this.stdout) closeSync(this.fd)
  }
}
