/**
 * Which DLQ entries a `wal dlq` command works on: key, target, error class, a time window (when they
 * were dead-lettered), and an expression over the entry, e.g.
 *   --where 'code == "HTTP_503" and attempts >= 3'   --where 'headers.source == "crm"'   --where 'message ~= "timeout"'
 *
 * Expressions fail closed: a name that is not a field, an unknown function or an invalid regular
 * expression is an error before anything is read (a typo must never select everything, as
 * `not (cdoe == "X")` would); an error while evaluating one stops the command. Regular expressions run
 * on V8's linear-time engine, so none can take exponential time on a hostile key or message.
 */
import v8 from 'node:v8'

import { compileExpression } from 'filtrex'

import { cutText, type ErrorClass, type LogRecord } from '../envelope/envelope.js'
import { UsageError } from '../errors.js'
import type { DlqEntry, DlqQuery } from '../log/backend.js'
import { parsePointInTimeMs } from '../time.js'
import { closestName } from '../edit-distance.js'

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

/** The fields an expression may name; `headers.NAME` and `payload.PATH` reach inside those two. */
export const EXPRESSION_FIELDS = ['id', 'key', 'target', 'errorClass', 'code', 'message', 'attempts', 'partition', 'parked', 'deadAt', 'createdAt', 'headers', 'payload', 'failures'] as const
/** filtrex's functions. */
const FUNCTIONS = ['abs', 'ceil', 'floor', 'log', 'log2', 'log10', 'max', 'min', 'round', 'sqrt', 'exists', 'empty']
const CONSTANTS = { true: true, false: false, null: null }

/** The fields an expression may name, and the hint that lists them: one set per kind of thing filtered. */
export interface ExpressionFields {
  names: readonly string[]
  hint: string
}

function fieldSet(names: readonly string[]): ExpressionFields {
  return { names, hint: `fields: ${names.filter((f) => f !== 'headers' && f !== 'payload').join(', ')}, headers.NAME, payload.PATH` }
}

const DLQ_FIELDS = fieldSet(EXPRESSION_FIELDS)

let linearEngine = false
/** A regular expression on V8's linear-time engine (no backtracking); a pattern it cannot run is an error. */
export function boundedRegExp(source: string): RegExp {
  if (!linearEngine) {
    // Off by default in V8; turning it on changes nothing else (the 'l' flag asks for it per pattern).
    v8.setFlagsFromString('--enable-experimental-regexp-engine')
    linearEngine = true
  }
  try {
    // eslint-disable-next-line no-invalid-regexp -- 'l' (linear engine) is a V8 flag, enabled above
    return new RegExp(source, 'l')
  } catch (error) {
    const reason = (error as Error).message.replace(/^Invalid regular expression: /, '')
    throw new UsageError(`--where: ${JSON.stringify(source)} is not a regular expression wal can run: ${reason}`, {
      code: 'WAL_WHERE_INVALID',
      suggestions: ['regular expressions run in linear time: no backreferences, lookarounds or repeat counts above a few hundred'],
    })
  }
}

interface Token {
  kind: 'symbol' | 'string' | 'other'
  text: string
  /** For a symbol: its name (quotes removed). */
  name?: string
}

/** Tokens as filtrex's lexer cuts them (its rules, in its order), enough to find names and regexes. */
function tokenize(expression: string): Token[] {
  const rules: Array<[RegExp, Token['kind'] | 'space']> = [
    [/^(?:\*|\/|-|\+|\^|\(|\)|,|==|!=|~=|>=|<=|<|>)/, 'other'],
    [/^(?:not\s+in[^\w]|and[^\w]|or[^\w]|not[^\w]|in[^\w]|of[^\w]|if[^\w]|then[^\w]|else[^\w]|mod[^\w])/, 'other'],
    [/^\s+/, 'space'],
    [/^[0-9]+(?:\.[0-9]+)?(?![0-9.])/, 'other'],
    [/^[a-zA-Z$_][.a-zA-Z0-9$_]*/, 'symbol'],
    [/^'(?:\\'|\\\\|[^'\\])*'/, 'symbol'],
    [/^"(?:\\"|\\\\|[^"\\])*"/, 'string'],
    [/^(?:%|\?|:)/, 'other'],
  ]
  const tokens: Token[] = []
  let rest = expression
  while (rest.length > 0) {
    const rule = rules.find(([re]) => re.test(rest))
    // Left for filtrex's parser to report.
    if (!rule) break
    const text = rule[0].exec(rest)![0]
    rest = rest.slice(text.length)
    if (rule[1] === 'space') continue
    if (rule[1] === 'other' && /^[a-z]/.test(text) && /[^\w]$/.test(text)) {
      // A keyword takes the character after it: give that back.
      rest = text.slice(-1) + rest
      tokens.push({ kind: 'other', text: text.slice(0, -1).trim() })
      continue
    }
    const name = rule[1] === 'symbol' ? (text.startsWith("'") ? text.slice(1, -1).replace(/\\(.)/g, '$1') : text) : undefined
    tokens.push({ kind: rule[1], text, name })
  }
  return tokens
}

/** Refuses names that are not fields, unknown functions and bad regular expressions (string literals after ~=). */
function checkNames(where: string, fields: ExpressionFields): void {
  const tokens = tokenize(where)
  tokens.forEach((token, i) => {
    if (token.kind === 'string' && tokens[i - 1]?.text === '~=') boundedRegExp(JSON.parse(token.text.replace(/\\'/g, "'")) as string)
    if (token.kind !== 'symbol') return
    const name = token.name!
    if (tokens[i + 1]?.text === '(') {
      if (FUNCTIONS.includes(name)) return
      const near = closestName(name, FUNCTIONS)
      throw new UsageError(`--where ${JSON.stringify(where)}: unknown function ${name}()`, {
        code: 'WAL_WHERE_INVALID',
        suggestions: [...(near ? [`did you mean ${near}()?`] : []), `functions: ${FUNCTIONS.join(', ')}`],
      })
    }
    // "a of b": a is looked up inside b.
    if (tokens[i + 1]?.text === 'of') return
    if (name in CONSTANTS) return
    const root = name.split('.')[0]!
    if (fields.names.includes(root) && (name === root || root === 'headers' || root === 'payload')) return
    const near = closestName(name, [...fields.names])
    throw new UsageError(`--where ${JSON.stringify(where)}: unknown field "${name}"`, {
      code: 'WAL_WHERE_INVALID',
      suggestions: [...(near ? [`did you mean "${near}"?`] : []), fields.hint],
    })
  })
}

/** The --where expression as a predicate over DLQ entries (see the module comment). */
export function compileWhere(where: string): (entry: DlqEntry) => boolean {
  return compileExpressionOver(where, DLQ_FIELDS, expressionFields, (entry) => `entry ${entry.mutation.id}`)
}

const MAX_WHERE_CHARS = 4096
const MAX_WHERE_NESTING = 64

/** The deepest parenthesis nesting of an expression (parentheses inside quotes count too: a bound, not a parse). */
function maxNesting(text: string): number {
  let depth = 0
  let max = 0
  for (const c of text) {
    if (c === '(') max = Math.max(max, ++depth)
    else if (c === ')') depth--
  }
  return max
}

/**
 * The --where language over anything: `fields` says which names an expression may use, `fieldsOf` gives
 * their values for one item, `describe` names the item in an evaluation error.
 */
export function compileExpressionOver<T>(where: string, fields: ExpressionFields, fieldsOf: (item: T) => Record<string, unknown>, describe: (item: T) => string): (item: T) => boolean {
  // The parser recurses per parenthesis: bounded here, so a pasted or generated monster gets a message,
  // not a stack overflow (and is not echoed back whole).
  if (where.length > MAX_WHERE_CHARS || maxNesting(where) > MAX_WHERE_NESTING) {
    throw new UsageError(`--where ${JSON.stringify(cutText(where, 80))} is too large: at most ${MAX_WHERE_CHARS} characters and ${MAX_WHERE_NESTING} levels of parentheses`, {
      code: 'WAL_WHERE_INVALID',
      suggestions: ['write the condition with and/or instead of nesting, e.g. --where \'key == "a" or key == "b"\'', fields.hint],
    })
  }
  let compiled: (fields: Record<string, unknown>) => unknown
  try {
    compiled = compileExpression(where, {
      constants: CONSTANTS,
      // Dotted names reach into headers and payload: headers.source, payload.item.id. Own properties only.
      customProp: (name: string, _get: (name: string) => unknown, object: Record<string, unknown>) =>
        name
          .split('.')
          .reduce<unknown>((value, part) => (value !== null && typeof value === 'object' && Object.hasOwn(value, part) ? (value as Record<string, unknown>)[part] : undefined), object),
      operators: {
        '==': (a: unknown, b: unknown) => a === b,
        '!=': (a: unknown, b: unknown) => a !== b,
        '~=': (a: unknown, b: unknown) => regexOf(String(b)).test(String(a ?? '')),
      },
    })
  } catch (error) {
    const lines = (error as Error).message.split('\n')
    const reason = lines.find((l) => l.startsWith('Expecting') || l.startsWith('Unknown')) ?? lines.at(-1) ?? lines[0]
    // The parser's caret line points into the expression (or its last 20 characters) on the line above it:
    // both are shown, so that the caret points at something.
    const caret = lines.findIndex((l) => /^-*\^$/.test(l))
    const pointer = caret > 0 ? `\n    ${lines[caret - 1]}\n    ${lines[caret]}` : ''
    throw new UsageError(`--where ${JSON.stringify(where)} is not an expression: ${reason}${pointer}`, {
      code: 'WAL_WHERE_INVALID',
      suggestions: ['e.g. --where \'key == "user-42" and attempts >= 3\'', fields.hint],
    })
  }
  checkNames(where, fields)
  const regexes = new Map<string, RegExp>()
  const regexOf = (source: string): RegExp => {
    let re = regexes.get(source)
    if (re === undefined) {
      re = boundedRegExp(source)
      regexes.set(source, re)
    }
    return re
  }
  return (item) => {
    const result = compiled(fieldsOf(item))
    // filtrex returns what an evaluation threw: stop rather than guess (a guess of "no" under `not` selects everything).
    if (result instanceof UsageError) throw result
    if (result instanceof Error) {
      throw new UsageError(`--where ${JSON.stringify(where)} failed on ${describe(item)}: ${result.message}`, { code: 'WAL_WHERE_INVALID', cause: result })
    }
    return result === true || result === 1
  }
}

/** What `wal tail --where` sees of a log record. */
export const RECORD_EXPRESSION_FIELDS = fieldSet(['id', 'key', 'target', 'partition', 'offset', 'createdAt', 'appendedAt', 'notBefore', 'attempts', 'idempotencyKey', 'headers', 'payload', 'failures'])

export function recordExpressionFields(record: LogRecord): Record<string, unknown> {
  let payload: unknown = null
  if (!record.poison && record.payload.encoding === 'json') payload = JSON.parse(record.payload.json) as unknown
  return {
    id: record.id,
    key: record.key,
    target: record.target,
    partition: record.partition,
    offset: record.offset,
    createdAt: new Date(record.createdAtMs).toISOString(),
    appendedAt: new Date(record.appendedAtMs).toISOString(),
    notBefore: record.notBeforeMs === null ? null : new Date(record.notBeforeMs).toISOString(),
    attempts: record.attempts,
    idempotencyKey: record.idempotencyKey,
    headers: record.headers,
    payload,
    failures: record.failures.length,
  }
}

/** `wal tail --where`: the same language as `dlq --where`, over log records. */
export function compileRecordWhere(where: string): (record: LogRecord) => boolean {
  return compileExpressionOver(where, RECORD_EXPRESSION_FIELDS, recordExpressionFields, (record) => `record ${record.partition}:${record.offset}`)
}

function time(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const ms = parsePointInTimeMs(text, Date.now())
  if (ms === undefined) throw new UsageError(`${flag} "${text}" is not a time`, { suggestions: ['use an ISO time (2026-11-22T10:00:00Z) or a duration ago (15m, 2h, 3d)'] })
  return ms
}

export function dlqFilter(options: DlqFilterOptions): DlqFilter {
  const classes = ['retryable', 'fatal', 'infrastructure', 'poison', 'txn-aborted']
  if (options.errorClass !== undefined && !classes.includes(options.errorClass)) {
    throw new UsageError(`--error-class "${options.errorClass}" is not an error class`, { suggestions: [`use one of ${classes.join(', ')}`] })
  }
  let matches: (entry: DlqEntry) => boolean = () => true
  if (options.where !== undefined) matches = compileWhere(options.where)
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
