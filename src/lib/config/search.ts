/**
 * cosmiconfig behind one function (loaded with the services, never by `--help` or `--version`), with
 * the loading made safe:
 * - the search goes up from the working directory only to the project root (the first directory with a
 *   `.git` or `package.json`) or $HOME, whichever comes first, so a `.walrc.cjs` planted in /tmp or a
 *   parent directory is never run; then ~/.config/wal/;
 * - a JS config (code, run to get the config) is refused when others may write it or another user owns
 *   it, and runs in a worker thread with a time limit, so one that never finishes, loops or throws is a
 *   config error, not a hang or a crash;
 * - YAML and JSON syntax errors say line, column and reason; YAML aliases are bounded.
 */
import { existsSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { Worker } from 'node:worker_threads'

import { cosmiconfig, type Loader } from 'cosmiconfig'
import { load as loadYamlText } from 'js-yaml'

import { ConfigError, InterruptedError } from '../errors.js'

export interface FoundConfig {
  config: unknown
  filepath: string
  isEmpty?: boolean
}

/** How long a config may take to load (a JS config runs code); WAL_CONFIG_TIMEOUT_MS overrides. */
export const CONFIG_LOAD_TIMEOUT_MS = 10_000
/** YAML aliases in one file: enough for any config, too few for a billion laughs. */
export const MAX_YAML_ALIASES = 100

/** Where the upward search stops: the project root, or $HOME, or (outside both) the start directory. */
export function searchStopDir(cwd: string, home = homedir()): string {
  let dir = resolve(cwd)
  for (;;) {
    if (dir === home || existsSync(join(dir, '.git')) || existsSync(join(dir, 'package.json'))) return dir
    const parent = dirname(dir)
    if (parent === dir) return resolve(cwd)
    dir = parent
  }
}

/** Line and column (1-based) of a character offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split(/\r\n|\r|\n/)
  return { line: before.length, column: before.at(-1)!.length + 1 }
}

function syntaxError(file: string, line: number, column: number, reason: string): ConfigError {
  return new ConfigError(`${file}:${line}:${column}: ${reason}`, {
    code: 'WAL_CONFIG_SYNTAX',
    details: { file, line, column, reason },
    suggestions: [`fix line ${line} of ${file}, then check it with: wal config validate`],
  })
}

const loadYaml: Loader = (filepath, content) => {
  try {
    return loadYamlText(content, { filename: filepath, maxAliases: MAX_YAML_ALIASES } as Parameters<typeof loadYamlText>[1]) ?? null
  } catch (error) {
    const { reason, mark } = error as { reason?: string; mark?: { line: number; column: number } }
    if (mark) throw syntaxError(filepath, mark.line + 1, mark.column + 1, `not valid YAML: ${reason ?? (error as Error).message}`)
    throw new ConfigError(`${filepath}: not valid YAML: ${reason ?? (error as Error).message}`, { code: 'WAL_CONFIG_SYNTAX' })
  }
}

const loadJson: Loader = (filepath, content) => {
  try {
    return JSON.parse(content) as unknown
  } catch (error) {
    const message = (error as Error).message
    const at = /position (\d+)/.exec(message)
    const { line, column } = at ? lineColumn(content, Number(at[1])) : { line: 1, column: 1 }
    throw syntaxError(filepath, line, column, `not valid JSON: ${message.replace(/ in JSON at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)$/, '')}`)
  }
}

/** A JS config runs as this user: refuse one that someone else could have written. */
function checkOwnership(filepath: string): void {
  const stat = statSync(filepath)
  const uid = process.getuid?.()
  const writableByOthers = (stat.mode & 0o022) !== 0
  const foreign = uid !== undefined && stat.uid !== uid && stat.uid !== 0
  if (!writableByOthers && !foreign) return
  const why = writableByOthers ? `others can write it (mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')})` : `it belongs to another user (uid ${stat.uid})`
  throw new ConfigError(`refusing to run the JS config ${filepath}: ${why}, and a JS config runs as code`, {
    code: 'WAL_CONFIG_UNSAFE',
    details: { file: filepath },
    suggestions: [
      ...(writableByOthers ? [`if it is yours: chmod go-w '${filepath}'`] : [`if you trust it: take it over (cp it, or chown $(id -un) '${filepath}')`]),
      'or use a YAML or JSON config (.walrc.yaml, .walrc.json): data, never run',
    ],
  })
}

function timeoutMs(): number {
  const fromEnv = Number(process.env.WAL_CONFIG_TIMEOUT_MS)
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : CONFIG_LOAD_TIMEOUT_MS
}

/** Runs in the worker: imports the config module and sends back what it exports, as data. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { pathToFileURL } = require('node:url')
;(async () => {
  let config
  try {
    const mod = await import(pathToFileURL(workerData.filepath).href)
    config = await ('default' in mod ? mod.default : { ...mod })
  } catch (error) {
    parentPort.postMessage({ ok: false, stage: 'run', message: String(error && error.message || error) })
    return
  }
  try {
    parentPort.postMessage({ ok: true, config })
  } catch (error) {
    parentPort.postMessage({ ok: false, stage: 'read', message: String(error && error.message || error) })
  }
})()
`

type WorkerAnswer = { ok: true; config: unknown } | { ok: false; stage: 'run' | 'read'; message: string }

/** A JS config, run in a worker thread that is stopped after the time limit, or on SIGINT/SIGTERM. */
const loadJs: Loader = (filepath) => {
  checkOwnership(filepath)
  const limitMs = timeoutMs()
  return new Promise((resolvePromise, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { filepath }, stdout: false, stderr: false })
    let settled = false
    const finish = (outcome: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      void worker.terminate()
      outcome()
    }
    const onSignal = (): void => finish(() => reject(new InterruptedError(`interrupted while loading the config ${filepath}`)))
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            new ConfigError(`the config ${filepath} did not finish loading within ${limitMs} ms`, {
              code: 'WAL_CONFIG_TIMEOUT',
              details: { file: filepath, timeoutMs: limitMs },
              suggestions: ['a JS config must export its settings without waiting on anything that never ends (a promise, a loop, a server)', 'or use a YAML or JSON config'],
            }),
          ),
        ),
      limitMs,
    )
    worker.once('message', (answer: WorkerAnswer) =>
      finish(() => {
        if (answer.ok) return resolvePromise(answer.config as object | null)
        reject(
          new ConfigError(
            answer.stage === 'run' ? `the config ${filepath} failed while running: ${answer.message}` : `the config ${filepath} exports something that is not plain data: ${answer.message}`,
            {
              code: 'WAL_CONFIG_INVALID',
              details: { file: filepath },
              suggestions: answer.stage === 'run' ? ['fix the error in the file, then: wal config validate'] : ['export plain data: objects, arrays, strings, numbers, booleans (no functions, getters or class instances)'],
            },
          ),
        )
      }),
    )
    worker.once('error', (error) => finish(() => reject(new ConfigError(`the config ${filepath} failed while running: ${error.message}`, { code: 'WAL_CONFIG_INVALID', details: { file: filepath } }))))
    worker.once('exit', () =>
      finish(() =>
        reject(
          new ConfigError(`the config ${filepath} never produced its settings (a top-level await that never settles?)`, {
            code: 'WAL_CONFIG_TIMEOUT',
            details: { file: filepath },
            suggestions: ['export the settings directly, or await only what finishes'],
          }),
        ),
      ),
    )
  })
}

const LOADERS = {
  '.json': loadJson,
  '.yaml': loadYaml,
  '.yml': loadYaml,
  noExt: loadYaml,
  // .walrc.example: the documented example, YAML, loads as it is with -c .walrc.example.
  '.example': loadYaml,
  '.js': loadJs,
  '.mjs': loadJs,
  '.cjs': loadJs,
  '.ts': loadJs,
}

/** Loads `path`, or searches from `cwd` (see the module comment): .walrc*, wal.config.*, package.json#wal, then ~/.config/wal. */
export async function findConfig(path: string | undefined, cwd: string | undefined): Promise<FoundConfig | null> {
  const start = cwd ?? process.cwd()
  const explorer = cosmiconfig('wal', { searchStrategy: 'global', stopDir: searchStopDir(start), cache: false, loaders: LOADERS })
  return path ? explorer.load(path) : explorer.search(start)
}
