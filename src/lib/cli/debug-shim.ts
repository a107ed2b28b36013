/**
 * Stands in for the `debug` package in the bundle (see scripts/build.mjs). oclif creates its loggers with
 * it on every start; loading and configuring `debug` costs start-up time that scripts calling
 * `wal produce` in a loop pay each time. With DEBUG set (e.g. DEBUG=oclif:*), the real package is loaded
 * and used, so oclif's debug output works as documented.
 */
import { createRequire } from 'node:module'

type Debugger = ((...args: unknown[]) => void) & { enabled: boolean; namespace: string }

function silent(namespace: string): Debugger {
  return Object.assign(() => undefined, { enabled: false, namespace })
}

const createDebug: (namespace: string) => Debugger = process.env.DEBUG
  ? (createRequire(import.meta.url)('debug') as (namespace: string) => Debugger)
  : silent

export default createDebug
