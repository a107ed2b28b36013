/**
 * Which DLQ entries a `wal dlq` command works on: key, target, error class, a time window (when they
 * were dead-lettered), and an expression over the entry, e.g.
 *   --where 'code == "HTTP_503" and attempts >= 3'   --where 'headers.source == "crm"'   --where 'message ~= "timeout"'
 */
import { compileExpression } from 'filtrex'

import type { ErrorClass } from '../envelope/envelope.js'
import { UsageError } from '../errors.js'
import type { DlqEntry, DlqQuery } from '../log/backend.js'
import { parsePointInTimeMs } from '../time.js'

export interface DlqFilterOptions {
  key?: string
  target?: string
  errorClass?: string
  since?: string
  until?: string
  where?: string
}

export interface DlqFilter {
  query: DlqQuery
  /** The part the store cannot do: the --where expression. */
  matches: (entry: DlqEntry) => boolean
  /** The filter as given, for audit lines and plans. */
  description: Record<string, string>
}

/** The fields an expression sees. */
export function expressionFields(entry: DlqEntry): Record<string, unknown> {
  const m = entry.mutation
  return {
    id: m.id,
    key: m.key,
    target: entry.target,
    errorClass: entry.errorClass,
    code: entry.code,
    message: entry.message,
    attempts: m.attempts,
    partition: entry.partition,
    parked: entry.parked,
    deadAt: new Date(entry.deadAtMs).toISOString(),
    createdAt: new Date(m.createdAtMs).toISOString(),
    headers: m.headers,
    payload: m.payload.encoding === 'json' ? (JSON.parse(m.payload.json) as unknown) : null,
    failures: m.failures.length,
  }
}

function time(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const ms = parsePointInTimeMs(text, Date.now())
  if (ms === undefined) throw new UsageError(`${flag} "${text}" is not a time`, { suggestions: ['use an ISO time (2026-11-22T10:00:00Z) or a duration ago (15m, 2h, 3d)'] })
  return ms
}

export function dlqFilter(options: DlqFilterOptions): DlqFilter {
  const classes = ['retryable', 'fatal', 'infrastructure', 'poison']
  if (options.errorClass !== undefined && !classes.includes(options.errorClass)) {
    throw new UsageError(`--error-class "${options.errorClass}" is not an error class`, { suggestions: [`use one of ${classes.join(', ')}`] })
  }
  let matches: (entry: DlqEntry) => boolean = () => true
  if (options.where !== undefined) {
    let compiled: (fields: Record<string, unknown>) => unknown
    try {
      compiled = compileExpression(options.where, {
        // Dotted names reach into headers and payload: headers.source, payload.item.id.
        // filtrex has no boolean literals: true and false are read as names, so `parked == true` works.
        customProp: (name: string, _get: (name: string) => unknown, object: Record<string, unknown>) =>
          name === 'true'
            ? true
            : name === 'false'
              ? false
              : name.split('.').reduce<unknown>((value, part) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined), object),
      })
    } catch (error) {
      const lines = (error as Error).message.split('\n')
      const reason = lines.find((l) => l.startsWith('Expecting') || l.startsWith('Unknown')) ?? lines.at(-1) ?? lines[0]
      throw new UsageError(`--where ${JSON.stringify(options.where)} is not an expression: ${reason}`, {
        suggestions: ['e.g. --where \'code == "HTTP_503" and attempts >= 3\'', 'fields: id, key, target, errorClass, code, message, attempts, partition, parked, deadAt, createdAt, headers.NAME, payload.PATH, failures'],
      })
    }
    matches = (entry) => {
      const result = compiled(expressionFields(entry))
      return result === true || result === 1
    }
  }
  const given: DlqFilterOptions = { key: options.key, target: options.target, errorClass: options.errorClass, since: options.since, until: options.until, where: options.where }
  const description = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Record<string, string>
  return {
    query: {
      key: options.key,
      target: options.target,
      errorClass: options.errorClass as ErrorClass | undefined,
      sinceMs: time('--since', options.since),
      untilMs: time('--until', options.until),
    },
    matches,
    description,
  }
}
