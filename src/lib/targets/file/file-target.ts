/**
 * The NDJSON target: appends each mutation's envelope as one line to a file (or stdout with "-"), in
 * the format `wal produce` reads back. Lines are buffered (encoded into reused blocks as they are
 * applied) and written (and fsync'd, for a file) on `flush()`, which the consumer calls before
 * committing its offsets.
 *
 * A file is written and fsync'd on libuv's thread pool, not on the event loop: a slow or stalled disk
 * holds up this target's commits only, while lease heartbeats, other targets and signals go on.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { fstat, fsync, ftruncate, writev } from 'node:fs'
import { promisify } from 'node:util'
import { dirname } from 'node:path'

import { encodeEnvelope, type Mutation } from '../../envelope/envelope.js'
import { TargetError, type ApplyContext, type BatchContext, type Target } from '../target.js'

const writevAsync = promisify(writev)
// O_NOCTTY: a terminal named as the path (or put in a FIFO's place) never becomes wal's controlling terminal.
const APPEND_NONBLOCK = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | constants.O_NOCTTY
const fsyncAsync = promisify(fsync)
const fstatAsync = promisify(fstat)
const ftruncateAsync = promisify(ftruncate)

const APPLIED: Promise<void> = Promise.resolve()

/**
 * Lines are encoded straight into blocks of this many bytes, reused from one flush to the next: no
 * string of a whole page is made (one past 128 KiB goes to V8's old generation at once, and waits
 * there for a full collection) and no buffer per page (one held across a flush's write and fsync is
 * moved to the old generation too): either made a long consume's memory grow with the log.
 */
const BLOCK_BYTES = 256 * 1024
/**
 * Bytes buffered, at most, while a flush is under way: past them an apply waits for that flush to end
 * (a slow fsync would otherwise let the consumer read on and buffer the log as fast as it reads it).
 */
const PACE_BYTES = 8 * 1024 * 1024
/**
 * Blocks kept for reuse after a flush, at most: as many as can be filled while a flush is under way,
 * and a few over, so a consumer that keeps up allocates none after its first flushes. A block is never
 * freed by hand (detaching its memory, as ArrayBuffer.prototype.transfer does, makes V8 throw away the
 * optimized code of every function that touches a typed array, Node's own included, and compile it
 * again with checks): the ones past this many are left to the collector.
 */
const SPARE_BLOCKS = PACE_BYTES / BLOCK_BYTES + 8
/** How long closing waits for a pipe's reader to take the last lines. */
const PIPE_CLOSE_WAIT_MS = 5_000

/** What is left of chunks after the first `bytes` of them were written (a write can be cut short). */
function unwritten(chunks: readonly Buffer[], bytes: number): Buffer[] {
  let at = 0
  while (at < chunks.length && bytes >= chunks[at]!.length) bytes -= chunks[at++]!.length
  const rest = chunks.slice(at)
  if (bytes > 0) rest[0] = rest[0]!.subarray(bytes)
  return rest
}

function writeFailed(error: unknown): TargetError {
  return new TargetError(`cannot append to the file: ${(error as Error).message}`, {
    errorClass: 'infrastructure',
    code: (error as NodeJS.ErrnoException).code ?? 'WRITE_FAILED',
    cause: error,
  })
}

/** A filled part of a block (or a line too long for one, in a buffer of its own), in the order applied. */
interface Chunk {
  bytes: Buffer
  /** The block the bytes are in, given back for reuse once they are on disk. */
  block: Buffer
}

export interface FileTargetOptions {
  name: string
  /** A file path, or "-" for stdout. */
  path: string
}

export class FileTarget implements Target {
  readonly name: string
  /** The descriptor written to; -1 while a named FIFO waits to be opened again for its next reader. */
  private fd: number
  private readonly stdout: boolean
  /** Only a regular file can be fsync'd: a device (/dev/null), a FIFO or a socket refuses it (EINVAL). */
  private readonly durable: boolean
  /** A pipe, FIFO or socket (`-` into `| jq`): written by the event loop as fast as its reader takes it. */
  private readonly pipe: boolean
  private pipeSocket: import('node:net').Socket | undefined
  /**
   * A named FIFO (not stdout): when its reader goes away, it is opened again for the next one, but only
   * while the path still names this FIFO (not a file or link put in its place meanwhile).
   */
  private readonly fifo: { path: string; dev: number; ino: number } | undefined
  /** What flush() writes next: filled blocks, in the order their lines were applied. */
  private chunks: Chunk[] = []
  /** The block lines are encoded into now, and how much of it is filled. */
  private block: Buffer | undefined
  private filled = 0
  private readonly spare: Buffer[] = []
  /** Bytes in chunks not yet handed to a flush. */
  private buffered = 0
  /** The flush under way, if any. */
  private flushing: Promise<void> | undefined

  constructor(options: FileTargetOptions) {
    this.name = options.name
    this.stdout = options.path === '-'
    try {
      if (!this.stdout) mkdirSync(dirname(options.path), { recursive: true })
      // Non-blocking: a FIFO nobody reads would otherwise block the thread in open(2) for good, where no
      // signal could end wal. A pipe's reader that stops reading holds up this target's flushes only.
      this.fd = this.stdout ? 1 : openSync(options.path, APPEND_NONBLOCK, 0o666)
      const stat = fstatSync(this.fd)
      this.durable = !this.stdout && stat.isFile()
      this.pipe = stat.isFIFO() || stat.isSocket()
      this.fifo = !this.stdout && stat.isFIFO() ? { path: options.path, dev: stat.dev, ino: stat.ino } : undefined
    } catch (error) {
      const why = (error as NodeJS.ErrnoException).code === 'ENXIO' ? 'it is a FIFO that no process reads yet (start its reader first)' : (error as Error).message
      throw new TargetError(`cannot open ${options.path} for appending: ${why}`, {
        errorClass: 'infrastructure',
        code: (error as NodeJS.ErrnoException).code ?? 'OPEN_FAILED',
        cause: error,
      })
    }
  }

  /** Buffers the line: nothing to wait for, so one settled promise serves nearly every apply (not one each). */
  apply(mutation: Mutation, context?: ApplyContext): Promise<void> {
    let line: string
    try {
      line = encodeEnvelope(mutation)
    } catch (error) {
      return Promise.reject(error)
    }
    this.append(line)
    return this.paced(context?.signal)
  }

  /** Buffers the lines of every mutation or (one cannot be encoded) of none. */
  applyBatch(mutations: readonly Mutation[], context?: BatchContext): Promise<void> {
    let lines: string[]
    try {
      lines = mutations.map((mutation) => encodeEnvelope(mutation))
    } catch (error) {
      return Promise.reject(error)
    }
    for (const line of lines) this.append(line)
    return this.paced(context?.signal)
  }

  /**
   * Settled at once; while a flush is under way and much is buffered, when that flush ends, or (a hard
   * stop: the drain timeout) rejected when `signal` aborts first, so a reader that stopped reading
   * (SIGSTOP, a pager left open) does not hold the consumer past it. The lines stay buffered; they are
   * not committed.
   */
  private paced(signal?: AbortSignal): Promise<void> {
    if (this.flushing === undefined || this.buffered + this.filled < PACE_BYTES) return APPLIED
    const flushed = this.flushing.then(
      () => undefined,
      () => undefined,
    )
    if (signal === undefined) return flushed
    return new Promise((resolve, reject) => {
      const stopped = (): void => reject(new TargetError('stopped while the output had not taken the lines before these', { errorClass: 'infrastructure', code: 'STOPPED' }))
      if (signal.aborted) return stopped()
      signal.addEventListener('abort', stopped, { once: true })
      void flushed.then(() => {
        signal.removeEventListener('abort', stopped)
        resolve()
      })
    })
  }

  /** Encodes a line and its newline at the end of the current block (a new one when it does not fit). */
  private append(line: string): void {
    // A UTF-16 unit takes at most 3 bytes in UTF-8: counted exactly only when it might not fit.
    let room = this.block === undefined ? 0 : BLOCK_BYTES - this.filled
    if (line.length * 3 + 1 > room) {
      const bytes = Buffer.byteLength(line) + 1
      if (bytes > room) {
        this.seal()
        if (bytes > BLOCK_BYTES) {
          const own = Buffer.allocUnsafeSlow(bytes)
          own.write(line)
          own[bytes - 1] = 0x0a
          this.chunks.push({ bytes: own, block: own })
          this.buffered += bytes
          return
        }
        this.block = this.spare.pop() ?? Buffer.allocUnsafeSlow(BLOCK_BYTES)
        room = BLOCK_BYTES
      }
    }
    const block = this.block!
    this.filled += block.write(line, this.filled)
    block[this.filled++] = 0x0a
  }

  /** Moves the current block's lines into the chunks to write; the next line starts another block. */
  private seal(): void {
    if (this.block !== undefined && this.filled > 0) {
      this.chunks.push({ bytes: this.block.subarray(0, this.filled), block: this.block })
      this.buffered += this.filled
    } else if (this.block !== undefined) this.spare.push(this.block)
    this.block = undefined
    this.filled = 0
  }

  /** Blocks whose lines are on disk: kept for the next lines, or freed. */
  private recycle(chunks: readonly Chunk[]): void {
    for (const { block } of chunks) {
      if (block.byteLength === BLOCK_BYTES && this.spare.length < SPARE_BLOCKS) this.spare.push(block)
    }
  }

  flush(): Promise<void> {
    // One after the other: a flush asked for while one is under way writes after it, so lines keep their order.
    const previous = this.flushing
    const write = (): Promise<void> => this.write()
    const flushing = (previous === undefined ? write() : previous.then(write, write)).finally(() => {
      if (this.flushing === flushing) this.flushing = undefined
    })
    this.flushing = flushing
    return flushing
  }

  private async write(): Promise<void> {
    this.seal()
    if (this.chunks.length === 0) return
    const chunks = this.chunks
    this.chunks = []
    this.buffered = 0
    if (this.pipe) {
      try {
        this.reopenFifo()
        await this.writePipe(chunks)
      } catch (error) {
        // The reader went away (EPIPE): nothing is committed past these lines. The target pauses; a
        // named FIFO is opened again at the next flush, and its next reader gets these lines first
        // (some of them may have reached the reader that left: delivery is at least once).
        this.requeue(chunks)
        if (this.fifo !== undefined) this.closePipe()
        if (error instanceof TargetError) throw error
        throw writeFailed(error)
      }
      this.recycle(chunks)
      return
    }
    let written = 0
    let startSize: number | undefined
    try {
      if (this.stdout) {
        // A terminal or a device the thread pool cannot write to in one go: written here, and on a
        // failure only what was not written is kept, so no line is cut or doubled in the output.
        let done = 0
        try {
          for (; done < chunks.length; done++) {
            const { bytes } = chunks[done]!
            for (let at = 0; at < bytes.length; ) {
              at += writeSync(this.fd, bytes, at)
              if (at < bytes.length) chunks[done] = { bytes: bytes.subarray(at), block: chunks[done]!.block }
            }
          }
        } catch (error) {
          this.recycle(chunks.slice(0, done))
          this.requeue(chunks.slice(done))
          throw writeFailed(error)
        }
      } else {
        startSize = (await fstatAsync(this.fd)).size
        // Every chunk in one call (a chunk per call took a turn of the event loop each, in which the
        // consumer read another page: the chunks waiting for a flush grew with the log).
        let rest = chunks.map((chunk) => chunk.bytes)
        while (rest.length > 0) {
          const { bytesWritten } = await writevAsync(this.fd, rest)
          written += bytesWritten
          rest = unwritten(rest, bytesWritten)
        }
        if (this.durable) await fsyncAsync(this.fd)
      }
    } catch (error) {
      if (error instanceof TargetError) throw error
      // Kept for the next flush: nothing is committed past lines not known to be on disk.
      this.requeue(chunks)
      // A write cut short (a full disk) leaves half a line: cut it off, unless another process
      // appended meanwhile (then the next flush's copy follows it; delivery is at least once).
      if (startSize !== undefined && written > 0) {
        const size = await fstatAsync(this.fd).then((st) => st.size, () => undefined)
        if (size === startSize + written) await ftruncateAsync(this.fd, startSize).catch(() => undefined)
      }
      throw writeFailed(error)
    }
    this.recycle(chunks)
  }

  /** Chunks not written, put back in front of what was buffered since: the next flush writes them first. */
  private requeue(chunks: readonly Chunk[]): void {
    this.chunks = [...chunks, ...this.chunks]
    for (const { bytes } of chunks) this.buffered += bytes.length
  }

  /** Opens the named FIFO again after its reader left, when a new reader holds it. */
  private reopenFifo(): void {
    const fifo = this.fifo
    if (fifo === undefined || this.fd >= 0) return
    let fd: number
    try {
      fd = openSync(fifo.path, APPEND_NONBLOCK & ~constants.O_CREAT)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const why = code === 'ENXIO' ? 'its reader went away and no process reads it now (start its reader again)' : (error as Error).message
      throw new TargetError(`cannot write to the FIFO ${fifo.path}: ${why}`, { errorClass: 'infrastructure', code: code ?? 'OPEN_FAILED', cause: error })
    }
    const stat = fstatSync(fd)
    if (!stat.isFIFO() || stat.dev !== fifo.dev || stat.ino !== fifo.ino) {
      closeSync(fd)
      throw new TargetError(`cannot write to the FIFO ${fifo.path}: the path names another file now (the FIFO was removed or replaced); restart the consumer to write to what it names`, {
        errorClass: 'infrastructure',
        code: 'FIFO_REPLACED',
      })
    }
    this.fd = fd
  }

  /** Closes a FIFO whose reader left (the socket owns its descriptor): the next flush opens it again. */
  private closePipe(): void {
    if (this.pipeSocket !== undefined) this.pipeSocket.destroy()
    else if (this.fd >= 0) closeSync(this.fd)
    this.pipeSocket = undefined
    this.fd = -1
  }

  /**
   * Writes to a pipe through the event loop: a reader that is slow or stopped (SIGSTOP) only holds this
   * target's flush, never a thread or the process (signals, heartbeats go on). Settles once the last
   * byte is in the pipe; the socket is not ref'd, so it keeps no finished consumer alive.
   */
  private writePipe(chunks: readonly Chunk[]): Promise<void> {
    if (this.pipeSocket === undefined) {
      this.pipeSocket = new (process.getBuiltinModule('node:net').Socket)({ fd: this.fd, readable: false, writable: true }).unref()
      // A write's failure (EPIPE: the reader went away) is the flush's to report, never an uncaught event.
      this.pipeSocket.on('error', () => undefined)
    }
    const socket = this.pipeSocket
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error)
      socket.once('error', onError)
      chunks.forEach(({ bytes }, i) => {
        if (i < chunks.length - 1) socket.write(bytes)
        else
          socket.write(bytes, (error) => {
            socket.off('error', onError)
            if (error) reject(error)
            else resolve()
          })
      })
    })
  }

  async close(): Promise<void> {
    if (this.pipe) {
      // A reader that stopped reading (SIGSTOP, a pager left open) does not hold the consumer's exit:
      // what it has not taken was never committed, and the next consumer applies it again.
      let timer: NodeJS.Timeout | undefined
      const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, PIPE_CLOSE_WAIT_MS)))
      await Promise.race([this.flush(), waited]).finally(() => clearTimeout(timer))
    } else await this.flush()
    if (this.stdout) return
    // The socket owns a FIFO's descriptor once made: destroying it closes it (and drops what is unwritten).
    if (this.pipeSocket !== undefined) this.pipeSocket.destroy()
    else if (this.fd >= 0) closeSync(this.fd)
  }
}
