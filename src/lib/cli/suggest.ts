/**
 * "Did you mean" for the command line: a mistyped command (the oclif command_not_found hook) and a
 * mistyped flag (a parse error in WalCommand) get the closest known name as a hint (see edit-distance.ts).
 */
import type { Hook } from '@oclif/core/hooks'
import { exit } from '@oclif/core/errors'

import { closestName } from '../edit-distance.js'
import { ExitCode } from '../errors.js'
import { escapeControl } from './render.js'

/** Command ids as a user types them: "dlq ls", not "dlq:ls". */
export function spacedIds(ids: readonly string[]): string[] {
  return ids.map((id) => id.replaceAll(':', ' '))
}

/** The command a mistyped one was meant to be: the whole id, else its last word within its topic. */
export function suggestCommand(typed: string, known: readonly string[]): string | undefined {
  const spaced = typed.replaceAll(':', ' ')
  return closestName(spaced, spacedIds(known), Math.max(2, Math.floor(spaced.length / 4)))
}

/** `wal prodcue`: what was not found, the closest command, and where the list is; exit 2. */
export const commandNotFound: Hook.CommandNotFound = async function (options) {
  const typed = options.id.replaceAll(':', ' ')
  const ids = options.config.commandIDs
  const suggestion = suggestCommand(options.id, ids)
  let text = `wal: unknown command "${typed}"\n`
  if (suggestion !== undefined) text += `  hint: did you mean: wal ${suggestion}\n`
  text += '  hint: see the commands with: wal help\n'
  process.stderr.write(escapeControl(text))
  exit(ExitCode.usage)
}

/** Hints for oclif's "Nonexistent flag(s): --nsx" error: the closest flag of the command for each. */
export function flagSuggestions(message: string, flags: Record<string, { char?: string }>): string[] {
  const match = /Nonexistent flags?: (.*)/.exec(message)
  if (!match) return []
  const names = Object.keys(flags)
  const hints: string[] = []
  for (const typed of match[1]!.split(/,\s*/)) {
    const bare = typed.replace(/^-+/, '').split('=')[0]!
    const close = closestName(bare, names, Math.max(2, Math.floor(bare.length / 4)))
    if (close !== undefined) hints.push(`did you mean ${close.length === 1 ? '-' : '--'}${close} instead of ${typed}?`)
  }
  return hints
}
