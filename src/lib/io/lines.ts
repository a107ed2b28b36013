/** Reading NDJSON input and writing line output, fast and without losing partial lines. */
import type { Readable, Writable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'

/** A line of input and its 1-based number. */
export interface NumberedLine {
  line: string
  lineNumber: number
}

/** Yields the complete lines of a stream, a chunk's worth at a time; empty lines are skipped. */
export async function* readLineChunks(input: Readable): AsyncGenerator<NumberedLine[]> {
  const decoder = new StringDecoder('utf8')
  let rest = ''
  let lineNumber = 0
  const split = (text: string, final: boolean): NumberedLine[] => {
    const parts = (rest + text).split('\n')
    rest = final ? '' : parts.pop()!
    const lines: NumberedLine[] = []
    for (const part of parts) {
      lineNumber++
      const line = part.endsWith('\r') ? part.slice(0, -1) : part
      if (line.trim() !== '') lines.push({ line, lineNumber })
    }
    return lines
  }
  for await (const chunk of input) {
    const lines = split(typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer), false)
    if (lines.length > 0) yield lines
  }
  const last = split(decoder.end(), true)
  if (last.length > 0) yield last
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
