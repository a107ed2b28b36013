/**
 * `wal ns init|show` name their namespace positionally (`wal ns init orders`) or with `-n` like every
 * other command (`wal ns init -n orders`): both work, and naming two different ones is refused.
 */
import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import { UsageError } from '../errors.js'

export const namespaceArg = (description: string) => ({ namespace: Args.string({ description: `${description} (or -n NAME).` }) })
export const namespaceOption = (description: string) => ({ namespace: Flags.string({ char: 'n', description: `${description} (or as the argument).` }) })

/** The namespace named, if any (else the config's default namespace applies). */
export function chosenNamespace(arg: string | undefined, flag: string | undefined): string | undefined {
  if (arg !== undefined && flag !== undefined && arg !== flag) {
    throw new UsageError(`two namespaces named: "${arg}" (argument) and "${flag}" (-n)`, { suggestions: ['name the namespace once: as the argument or with -n'] })
  }
  return arg ?? flag
}
