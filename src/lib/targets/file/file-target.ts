/**
 * The NDJSON target: appends each mutation's envelope as one line to a file (or stdout with "-"), in
 * the format `wal produce` reads back. Lines are buffered and written (and fsync'd, for a file) on
 * `flush()`, which the consumer calls before committing its offsets.
 */
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

import { encodeEnvelope, type Mutation } from '../../envelope/envelope.js'
import { TargetError, type Target } from '../target.js'

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

  async apply(mutation: Mutation): Promise<void> {
    this.buffer.push(encodeEnvelope(mutation))
  }

  async flush(): Promise<void> {
    if (this.buffer.length === 0) return
    const text = this.buffer.join('\n') + '\n'
    this.buffer = []
    try {
      const bytes = Buffer.from(text)
      let written = 0
      while (written < bytes.length) written += writeSync(this.fd, bytes, written)
      if (this.durable) fsyncSync(this.fd)
    } catch (error) {
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
