/** The daemon's structured log: one JSON line per operator-relevant event, on stdout. */
import { pino, type Logger } from 'pino'

import { redactSecrets, redactText } from '../config/redact.js'

export type { Logger }

export function createLogger(level = process.env.WAL_LOG_LEVEL ?? 'info'): Logger {
  // Synchronous: the last lines before a crash or a kill are the ones an operator needs.
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Every line through the one redaction rule: messages and fields quote URLs, errors, config.
      hooks: {
        logMethod(args, method) {
          const redacted = args.map((arg: unknown) => (typeof arg === 'string' ? redactText(arg) : redactSecrets(arg))) as Parameters<typeof method>
          method.apply(this, redacted)
        },
      },
    },
    pino.destination({ dest: 1, sync: true }),
  )
}
