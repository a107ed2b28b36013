/** Reading NDJSON input and writing line output, fast and without losing partial lines. */
import type { Readable, Writable } from 'node:stream'
import { isUtf8 } from 'node:buffer'
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs'

import { invalidUtf8Offset } from '../envelope/json-text.js'
import { InterruptedError } from '../errors.js'
import { holdYoungGeneration } from '../young-generation.js'

/** A line of input and its 1-based number. */
export interface NumberedLine {
  line: string
  lineNumber: number
  /** Set when the line cannot be taken as text (bytes that are not UTF-8): why; `line` is then empty. */
  invalid?: string
}

/** Lines longer than this are not kept in memory whole: they are refused, and reading goes on after them. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024

const NEWLINE = 0x0a

/**
 * Yields the complete lines of a stream, a chunk's worth at a time; empty lines are skipped, a CR
 * before the newline is dropped, and a byte order mark at the start of the input is ignored. A line
 * whose bytes are not valid UTF-8 is yielded with `invalid` saying at which byte (never with U+FFFD
 * in place of them), and so is a line over MAX_LINE_BYTES.
 */
export async function* readLineChunks(input: Readable, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<NumberedLine[]> {
  let carry: Buffer[] = []
  let carryBytes = 0
  /** The line being read is over the limit: its bytes are dropped until its newline. */
  let overLong = false
  let lineNumber = 0
  let first = true
  const push = (lines: NumberedLine[], bytes: Buffer): void => {
    lineNumber++
    let end = bytes.length
    if (end > 0 && bytes[end - 1] === 0x0d) end--
    let start = 0
    if (first) {
      first = false
      if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3
    }
    const body = bytes.subarray(start, end)
    if (!isUtf8(body)) {
      const at = invalidUtf8Offset(body)
      lines.push({ line: '', lineNumber, invalid: `the line is not valid UTF-8 (byte ${at + 1} of the line, 0x${body[at]?.toString(16).padStart(2, '0') ?? '??'}); send bytes as a base64 payload with "payloadEncoding":"base64"` })
      return
    }
    const line = body.toString('utf8')
    if (line.trim() !== '') lines.push({ line, lineNumber })
  }
  const split = (text: Buffer, lines: NumberedLine[]): void => {
    if (text.length === 0) return
    // The whole block is valid UTF-8 (the usual case): decode once, split the string.
    if (!first && isUtf8(text)) {
      const parts = text.toString('utf8').split('\n')
      parts.pop() // the block ends with a newline
      for (const part of parts) {
        lineNumber++
        const line = part.endsWith('\r') ? part.slice(0, -1) : part
        if (line.trim() !== '') lines.push({ line, lineNumber })
      }
      return
    }
    let at = 0
    for (;;) {
      const nl = text.indexOf(NEWLINE, at)
      if (nl === -1) break
      push(lines, text.subarray(at, nl))
      at = nl + 1
    }
  }
  for await (const chunk of input) {
    holdYoungGeneration()
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)
    const nl = bytes.lastIndexOf(NEWLINE)
    if (nl === -1) {
      if (overLong) continue
      carry.push(bytes)
      carryBytes += bytes.length
      if (carryBytes > maxLineBytes) {
        overLong = true
        carry = []
        carryBytes = 0
      }
      continue
    }
    const lines: NumberedLine[] = []
    let head = bytes.subarray(0, nl + 1)
    if (overLong) {
      // The end of the over-long line is in this chunk: refuse it, and go on after it.
      const end = head.indexOf(NEWLINE)
      lineNumber++
      lines.push({ line: '', lineNumber, invalid: `the line is longer than ${maxLineBytes} bytes` })
      head = head.subarray(end + 1)
      overLong = false
    } else if (carry.length > 0) {
      // Only the line that started in an earlier chunk is joined (copied); the rest is decoded in place.
      const end = head.indexOf(NEWLINE)
      carry.push(head.subarray(0, end + 1))
      split(Buffer.concat(carry), lines)
      head = head.subarray(end + 1)
    }
    carry = []
    carryBytes = 0
    split(head, lines)
    const rest = bytes.subarray(nl + 1)
    if (rest.length > 0) {
      carry.push(rest)
      carryBytes = rest.length
    }
    if (lines.length > 0) yield lines
  }
  const lines: NumberedLine[] = []
  if (overLong) {
    lineNumber++
    lines.push({ line: '', lineNumber, invalid: `the line is longer than ${maxLineBytes} bytes` })
  } else if (carryBytes > 0) {
    const last = Buffer.concat(carry)
    push(lines, last)
  }
  if (lines.length > 0) yield lines
}

/** Writes text, waiting when the reader is slower than we are. Resolves false if the reader went away. */
export function writeText(output: Writable, text: string): Promise<boolean> | boolean {
  if (text === '') return true
  if (output.writableEnded || output.destroyed) return false
  if (output.write(text)) return true
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      output.off('drain', onDrain)
      output.off('error', onError)
      output.off('close', onClose)
      resolve(ok)
    }
    const onDrain = (): void => done(true)
    const onError = (): void => done(false)
    const onClose = (): void => done(false)
    output.on('drain', onDrain)
    output.on('error', onError)
    output.on('close', onClose)
  })
}

/**
 * A file's bytes, reading at most `maxBytes` of them: null when it holds more. A file a user names
 * (--payload-file, --config) may be a pipe or a device (/dev/zero), which has no size to check first.
 */
export async function readFileUpTo(path: string, maxBytes: number): Promise<Buffer | null> {
  // Opened without blocking: a FIFO nobody writes to yet would otherwise hold a thread of Node's pool in
  // open(2), and the process could then not end at all (Ctrl-C, SIGTERM: its exit waits for that thread).
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  let owned = true
  try {
    const stat = fstatSync(fd)
    if (stat.isFIFO() || stat.isSocket()) {
      // Read as the event loop reads a pipe: waiting for a writer holds no thread, and a signal ends it.
      owned = false
      return await readPipe(fd, path, maxBytes)
    }
    if (stat.isCharacterDevice() && process.getBuiltinModule('node:tty').isatty(fd)) {
      throw new Error('it is a terminal: name a file, or pipe the text in (<(…))')
    }
    // A regular file (a config, nearly always) or a device that never blocks (/dev/zero): read at once,
    // without node:fs/promises, whose loading (readline and fs watchers behind it) costs more than a config.
    return readAll(fd, maxBytes)
  } finally {
    if (owned) closeSync(fd)
  }
}

function readAll(fd: number, maxBytes: number): Buffer | null {
  const chunks: Buffer[] = []
  let size = 0
  for (;;) {
    const buffer = Buffer.allocUnsafe(64 * 1024)
    const bytesRead = readSync(fd, buffer, 0, buffer.length, null)
    if (bytesRead === 0) return Buffer.concat(chunks, size)
    size += bytesRead
    if (size > maxBytes) return null
    chunks.push(buffer.subarray(0, bytesRead))
  }
}

/**
 * A pipe's bytes until its writer closes it (null past maxBytes); the fd is closed when done. Ctrl-C or
 * SIGTERM while it waits (a FIFO nobody writes to) ends the wait as an interruption.
 */
function readPipe(fd: number, path: string, maxBytes: number): Promise<Buffer | null> {
  const socket = new (process.getBuiltinModule('node:net').Socket)({ fd, readable: true, writable: false })
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const finish = (outcome: () => void): void => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      socket.destroy()
      outcome()
    }
    const onSignal = (): void => finish(() => reject(new InterruptedError(`interrupted while reading ${path}`)))
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBytes) finish(() => resolve(null))
      else chunks.push(chunk)
    })
    socket.on('end', () => finish(() => resolve(Buffer.concat(chunks, size))))
    socket.on('error', (error) => finish(() => reject(error)))
  })
}
