/** Turning valibot issues into words for messages. */
import type { BaseIssue } from 'valibot'

/**
 * What was expected: our schemas' own messages say it in words ("a table name: letters, …"); valibot's
 * defaults start with "Invalid", and then its short form ("string", ">=1") is used.
 */
export function expectedOf(issue: BaseIssue<unknown>): string {
  return issue.message.startsWith('Invalid') ? (issue.expected ?? 'another value') : issue.message
}
