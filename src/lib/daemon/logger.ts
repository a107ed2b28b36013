/** The daemon's structured log: one JSON line per operator-relevant event, on stdout. */
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger(level = process.env.WAL_LOG_LEVEL ?? 'info'): Logger {
  // Synchronous: the last lines before a crash or a kill are the ones an operator needs.
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 1, sync: true }))
}
