/** Turning valibot issues into words for messages. */
import type { BaseIssue } from 'valibot'

/**
 * What was expected: our schemas' own messages say it in words ("a table name: letters, …"); valibot's
 * defaults start with "Invalid", and then its short form ("string", ">=1") is used.
 */
export function expectedOf(issue: BaseIssue<unknown>): string {
  if (!issue.message.startsWith('Invalid')) return issue.message
  // valibot's short form of minLength(1) is ">=1": say it in words.
  if (issue.type === 'min_length' && issue.expected === '>=1') return typeof issue.input === 'string' ? 'a non-empty value' : 'at least one item'
  // And its "<=1024" of maxLength: with the unit ("expected at most 1024 characters").
  const bound = /^(<=|>=)(\d+)$/.exec(issue.expected ?? '')
  if ((issue.type === 'max_length' || issue.type === 'min_length') && bound) {
    return `${bound[1] === '<=' ? 'at most' : 'at least'} ${bound[2]} ${typeof issue.input === 'string' ? 'characters' : 'items'}`
  }
  return issue.expected ?? 'another value'
}

/** What was found: a length check reports a length, so show the value itself when it is a string. */
export function receivedOf(issue: BaseIssue<unknown>): string {
  if (issue.type !== 'min_length' && issue.type !== 'max_length') return issue.received
  if (typeof issue.input === 'string') return issue.input.length > 40 ? `${issue.input.length} characters` : JSON.stringify(issue.input)
  if (Array.isArray(issue.input)) return issue.input.length === 0 ? 'an empty list' : `${issue.input.length} items`
  return issue.received
}

/**
 * A schema built on first use. The configuration's schemas are hundreds of objects and a few
 * milliseconds to build, on every start, while most runs (no config file: zero-config mode) never
 * validate one. The stand-in passes every read, `in`, key listing and spread to the schema, built once.
 */
export function lazy<T extends object>(build: () => T): T {
  let built: T | undefined
  const schema = (): T => (built ??= build())
  return new Proxy({} as T, {
    get: (_, key) => Reflect.get(schema(), key),
    has: (_, key) => Reflect.has(schema(), key),
    ownKeys: () => Reflect.ownKeys(schema()),
    getOwnPropertyDescriptor: (_, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(schema(), key)
      // A proxy may not report a property its (empty) target lacks as non-configurable.
      return descriptor && { ...descriptor, configurable: true }
    },
    getPrototypeOf: () => Reflect.getPrototypeOf(schema()),
  })
}
