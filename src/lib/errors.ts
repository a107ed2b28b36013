/**
 * One error hierarchy for everything `wal` reports to a user. Each class has a stable `code` (for
 * scripts and `--json`) and an `exitCode` (documented in the README). Adapters convert library and
 * system errors into these where they call them, keeping the original as `cause`.
 */
import { redactSecrets, redactText } from './config/redact.js'

/** Process exit codes. Stable: scripts depend on them. */
export const ExitCode = {
  ok: 0,
  /** A bug in wal: the message says where to report it. */
  internal: 1,
  /** Bad flags or arguments, an unknown namespace: fix the command line. */
  usage: 2,
  /** The configuration file is unreadable or invalid. */
  config: 3,
  /** Some input records were rejected; every other record is durable. */
  rejected: 4,
  /** The backend (state directory, broker, queue) cannot be reached or written. Nothing was lost. */
  unavailable: 5,
  /** A write timed out and its outcome is unknown: re-produce with the same idempotency key. */
  unknown: 6,
  /** What was asked for does not exist (a namespace with no log yet, a mutation id). */
  notFound: 7,
  /** `consume` finished, but dead-lettered mutations during the run (not an error: the summary is printed). */
  deadLettered: 8,
  /** Another consumer holds what the command would change (an offsets reset without --force): nothing was changed. */
  conflict: 9,
  /** Interrupted by a signal before finishing. */
  interrupted: 130,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export interface WalErrorOptions {
  /** A more specific stable code than the class's own (e.g. WAL_PAYLOAD_TOO_LARGE). */
  code?: string
  /** What the user can do about it, one hint per entry. */
  suggestions?: readonly string[]
  /** The error this one was converted from. */
  cause?: unknown
  /** Structured details for `--json` (key path, line number, …). */
  details?: Record<string, unknown>
}

/** Base of every error `wal` shows to a user. */
export abstract class WalError extends Error {
  /** The code of errors of this class unless one is given. */
  static readonly defaultCode: string = 'WAL_ERROR'
  readonly code: string
  abstract readonly exitCode: ExitCodeValue
  /** Whether trying the same thing again may succeed without changing anything. */
  readonly retriable: boolean = false
  readonly suggestions: readonly string[]
  readonly details: Record<string, unknown>

  constructor(message: string, options: WalErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = options.code ?? (new.target as unknown as typeof WalError).defaultCode
    this.suggestions = options.suggestions ?? []
    this.details = options.details ?? {}
  }

  /** The shape printed for `--json`. */
  /** The error as --json and the HTTP API show it, secrets redacted (see config/redact.ts). */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: redactText(this.message),
      exitCode: this.exitCode,
      retriable: this.retriable,
      suggestions: this.suggestions.map(redactText),
      ...(Object.keys(this.details).length > 0 ? { details: redactSecrets(this.details) } : {}),
    }
  }
}

export class UsageError extends WalError {
  static override readonly defaultCode: string = 'WAL_USAGE'
  readonly exitCode = ExitCode.usage
}

export class UnknownNamespaceError extends UsageError {
  static override readonly defaultCode: string = 'WAL_NAMESPACE_UNKNOWN'
  constructor(namespace: string, declared: readonly string[], configPath: string) {
    super(`namespace "${namespace}" is not declared in ${configPath}`, {
      details: { namespace, declared },
      suggestions: [
        declared.length > 0 ? `declared namespaces: ${declared.join(', ')}` : 'the config declares no namespaces',
        `add it under "namespaces:" in ${configPath}`,
      ],
    })
  }
}

export class ConfigError extends WalError {
  static override readonly defaultCode: string = 'WAL_CONFIG_INVALID'
  readonly exitCode = ExitCode.config
}

/** A cluster refused the configured credentials (password, certificate): nothing can be done until fixed. */
export class ClusterAccessError extends ConfigError {
  static override readonly defaultCode: string = 'WAL_CLUSTER_ACCESS'
}

/** One or more input records were rejected; the others are durable. */
export class InputRejectedError extends WalError {
  static override readonly defaultCode: string = 'WAL_INPUT_REJECTED'
  readonly exitCode = ExitCode.rejected
}

/** A single record that cannot be accepted: raised per line and reported, never fatal to a batch. */
export class InvalidRecordError extends WalError {
  static override readonly defaultCode: string = 'WAL_RECORD_INVALID'
  readonly exitCode = ExitCode.rejected
}

export class BackendUnavailableError extends WalError {
  static override readonly defaultCode: string = 'WAL_BACKEND_UNAVAILABLE'
  readonly exitCode = ExitCode.unavailable
  override readonly retriable = true
}

export class DurabilityUnknownError extends WalError {
  static override readonly defaultCode: string = 'WAL_DURABILITY_UNKNOWN'
  readonly exitCode = ExitCode.unknown
  override readonly retriable = true
}

export class NotFoundError extends WalError {
  static override readonly defaultCode: string = 'WAL_NOT_FOUND'
  readonly exitCode = ExitCode.notFound
}

/** Someone else holds what was to be changed (a live consumer's lease): nothing was changed. */
export class ConflictError extends WalError {
  static override readonly defaultCode: string = 'WAL_CONFLICT'
  readonly exitCode = ExitCode.conflict
}

export class InterruptedError extends WalError {
  static override readonly defaultCode: string = 'WAL_INTERRUPTED'
  readonly exitCode = ExitCode.interrupted
}

/** A bug: anything that is not a WalError ends up here. */
export class InternalError extends WalError {
  static override readonly defaultCode: string = 'WAL_INTERNAL'
  readonly exitCode = ExitCode.internal
}

/** Converts anything thrown into a WalError, so there is one way errors reach the user. */
export function toWalError(error: unknown): WalError {
  if (error instanceof WalError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new InternalError(`unexpected error: ${message}`, {
    cause: error,
    suggestions: ['this is a bug in wal: please report it with the command you ran and WAL_DEBUG=1 output'],
  })
}
