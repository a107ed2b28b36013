/**
 * The NDJSON target: appends each mutation's envelope as one line to a file (or stdout with "-"), in
 * the format `wal produce` reads back. Lines are buffered and written (and fsync'd, for a file) on
 * `flush()`, which the consumer calls before committing its offsets.
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
  private buffer: string[] = []

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
      this.buffer.push(encodeEnvelope(mutation))
    } catch (error) {
      return Promise.reject(error)
    }
    return APPLIED
  }

  /** Buffers the lines of every mutation, or (one cannot be encoded) of none. */
  applyBatch(mutations: readonly Mutation[]): Promise<void> {
    const lines = new Array<string>(mutations.length)
    try {
      for (let i = 0; i < mutations.length; i++) lines[i] = encodeEnvelope(mutations[i]!)
    } catch (error) {
      return Promise.reject(error)
    }
    for (const line of lines) this.buffer.push(line)
    return APPLIED
  }

  async flush(): Promise<void> {
    if (this.buffer.length === 0) return
    const lines = this.buffer
    const bytes = Buffer.from(lines.join('\n') + '\n')
    this.buffer = []
    let written = 0
    let startSize: number | undefined
    try {
      if (this.stdout) {
        // stdout may be a pipe or terminal the thread pool cannot write to in one go: written here.
        while (written < bytes.length) written += writeSync(this.fd, bytes, written)
      } else {
        startSize = (await fstatAsync(this.fd)).size
        while (written < bytes.length) written += (await writeAsync(this.fd, bytes, written, bytes.length - written)).bytesWritten
        if (this.durable) await fsyncAsync(this.fd)
      }
    } catch (error) {
      // Kept for the next flush: nothing is committed past lines not known to be on disk.
      this.buffer = [...lines, ...this.buffer]
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
