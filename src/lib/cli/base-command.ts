/**
 * The base of every `wal` command: the shared flags, `--json`, signals, and the one place where errors
 * reach the user (text on stderr, or one JSON object on stderr with `--json`) with their exit code.
 */
import { Command } from '@oclif/core/command'
import { ExitError } from '@oclif/core/errors'
import * as Flags from '@oclif/core/flags'

import type { Input, OutputArgs, OutputFlags, ParserOutput } from '@oclif/core/parser'

import { ExitCode, toWalError, UsageError, WalError } from '../errors.js'
import { processIo, type CommonOptions } from '../io/context.js'
import { redactText } from '../config/redact.js'
import { escapeControl } from './render.js'
import { flagSuggestions } from './suggest.js'

export abstract class WalCommand extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    config: Flags.string({
      char: 'c',
      description: 'Config file to use instead of searching for .walrc*, wal.config.* or package.json#wal.',
      env: 'WAL_CONFIG',
      helpGroup: 'GLOBAL',
    }),
    context: Flags.string({
      description: 'Context of the config file to use (else $WAL_CONTEXT, else the one chosen with `wal config use-context`).',
      helpGroup: 'GLOBAL',
    }),
  }

  private readonly controller = new AbortController()
  private signalCount = 0

  /** Aborted on the first SIGINT/SIGTERM; long-running work stops at a safe point. */
  protected get signal(): AbortSignal {
    return this.controller.signal
  }

  override async init(): Promise<void> {
    await super.init()
    const onSignal = (): void => {
      this.signalCount++
      if (this.signalCount > 1) process.exit(ExitCode.interrupted)
      this.controller.abort()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  }

  /**
   * Parses the command line as oclif does, then refuses an empty value (`-k ''`, `--target=`): no flag
   * or argument of wal means anything by one, and taking it as "no filter" or "all" would surprise.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- oclif's own signature, overridden as it is
  protected override async parse<F extends OutputFlags<any>, B extends OutputFlags<any>, A extends OutputArgs<any>>(options?: Input<F, B, A>, argv?: string[]): Promise<ParserOutput<F, B, A>> {
    const parsed = await super.parse(options, argv)
    for (const token of parsed.raw) {
      if (token.input !== '') continue
      const what = token.type === 'flag' ? `--${token.flag}` : `argument ${token.arg}`
      throw new UsageError(`${what} "" is empty: expected a non-empty value`, { code: 'WAL_FLAG_RANGE', details: { [token.type]: token.type === 'flag' ? token.flag : token.arg, value: '' } })
    }
    return parsed
  }

  /** Every command's text output: control characters in it are shown escaped (--json is printed exact). */
  override log(message = '', ...args: unknown[]): void {
    super.log(escapeControl(message), ...args)
  }

  /** Options every service takes. */
  protected common(flags: { config?: string; context?: string }): CommonOptions {
    return { configPath: flags.config, context: flags.context, json: this.jsonEnabled(), io: processIo() }
  }

  override async catch(error: Error & { oclif?: { exit?: number } }): Promise<never> {
    if (error instanceof ExitError) throw error
    const walError = this.convert(error)
    const stderr = process.stderr
    if (this.jsonEnabled()) {
      stderr.write(`${JSON.stringify({ error: walError.toJSON() })}\n`)
    } else {
      let text = `wal: ${redactText(walError.message)}\n`
      for (const suggestion of walError.suggestions) text += `  hint: ${redactText(suggestion)}\n`
      if (process.env.WAL_DEBUG) text += `${(walError.cause as Error | undefined)?.stack ?? walError.stack}\n`
      stderr.write(escapeControl(text))
    }
    this.exit(walError.exitCode)
  }

  private convert(error: Error & { oclif?: { exit?: number } }): WalError {
    // A flag's own check (lib/cli/flags.ts) threw a UsageError, which oclif prefixed with "Parsing --flag".
    if (error instanceof WalError) {
      error.message = error.message.replace(/^Parsing --\S+ \n\t/, '').replace(/\nSee more help with --help$/, '')
      if (error instanceof UsageError && error.suggestions.length === 0) return new UsageError(error.message, { code: error.code, details: error.details, suggestions: [`see: wal ${this.id?.replaceAll(':', ' ') ?? ''} --help`] })
      return error
    }
    // oclif's own parse errors (unknown flag, missing argument, bad option value) are usage errors.
    if (error.oclif?.exit === 2 || error.name.endsWith('FlagsError') || error.name.endsWith('ArgsError')) {
      const flags = { ...(this.ctor.flags ?? {}), ...(this.ctor.baseFlags ?? {}), ...(this.ctor.enableJsonFlag ? { json: {} } : {}) }
      return new UsageError(error.message.replace(/\n\s*See more help with --help$/, ''), {
        suggestions: [...flagSuggestions(error.message, flags), `see: wal ${this.id?.replaceAll(':', ' ') ?? ''} --help`],
      })
    }
    return toWalError(error)
  }
}
