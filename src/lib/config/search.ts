/**
 * The config search and loading, with the loading made safe:
 * - the places and their order are cosmiconfig's for the module name "wal" (package.json#wal, .walrc,
 *   .walrc.{json,yaml,yml,js,ts,cjs,mjs}, .config/walrc…, wal.config.{js,ts,cjs,mjs}), but without
 *   cosmiconfig's "meta config": it read package.json#cosmiconfig, package.yaml and .config/config.* in
 *   the working directory on every run, and ran a .config/config.js there in process, without the checks
 *   below (so `cd /tmp && wal …` ran whatever another user planted in /tmp/.config/);
 * - the search goes up from the working directory only to the project root (the first directory with a
 *   `.git` or `package.json`) or $HOME, whichever comes first, so a `.walrc.cjs` planted in /tmp or a
 *   parent directory is never run; then ~/.config/wal/;
 * - a JS config (code, run to get the config) is refused when others may write it or another user owns
 *   it, and runs in a worker thread with a time limit, so one that never finishes, loops or throws is a
 *   config error, not a hang or a crash;
 * - YAML and JSON syntax errors say line, column and reason; YAML aliases are bounded;
 * - when no file is in any place the search looks, the YAML parser is not even loaded (one directory
 *   listing per place instead): zero-config runs, scripts' loops, start up faster.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { basename, dirname, extname, join, resolve } from 'node:path'

/** Turns a config file's text into its settings (may run it: a JS config). */
type Loader = (filepath: string, content: string) => unknown

import { ConfigError, InterruptedError } from '../errors.js'
import { readFileUpTo } from '../io/lines.js'

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

/** js-yaml, loaded only when a YAML config is read (a JSON one, as `.walrc.json`, never loads it). */
let loadYamlText: typeof import('js-yaml').load

const loadYaml: Loader = async (filepath, content) => {
  loadYamlText ??= (await import('js-yaml')).load
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
    const { Worker } = process.getBuiltinModule('node:worker_threads')
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

/** Where the search looks in each directory, in order (cosmiconfig's default places for "wal"). */
export const SEARCH_PLACES = [
  'package.json',
  '.walrc',
  ...['json', 'yaml', 'yml', 'js', 'ts', 'cjs', 'mjs'].map((ext) => `.walrc.${ext}`),
  '.config/walrc',
  ...['json', 'yaml', 'yml', 'js', 'ts', 'cjs', 'mjs'].map((ext) => `.config/walrc.${ext}`),
  ...['js', 'ts', 'cjs', 'mjs'].map((ext) => `wal.config.${ext}`),
]

/** Where it looks in the global config directory (~/.config/wal), in order. */
export const GLOBAL_PLACES = ['config', ...['json', 'yaml', 'yml', 'js', 'ts', 'cjs', 'mjs'].map((ext) => `config.${ext}`)]

/** A package.json that holds `property` (or cannot be read or parsed: then loading it says why). */
function packageJsonHas(file: string, property: string): boolean {
  try {
    if (!statSync(file).isFile()) return true
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown
    return typeof parsed === 'object' && parsed !== null && Object.hasOwn(parsed, property)
  } catch {
    return true
  }
}

/** cosmiconfig's global config directory for "wal" (what its env-paths gives). */
function globalConfigDir(env = process.env): string {
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Preferences', 'wal')
  if (process.platform === 'win32') return join(env.APPDATA || join(homedir(), 'AppData', 'Roaming'), 'wal', 'Config')
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'wal')
}

/** The names in a directory; null when there is no such directory; 'unknown' when it cannot be listed. */
function namesIn(dir: string): Set<string> | null | 'unknown' {
  try {
    return new Set(readdirSync(dir))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return code === 'ENOENT' || code === 'ENOTDIR' ? null : 'unknown'
  }
}

/** The directories searched, in order: from `start` up to `stopDir` (both included), then the global one. */
function searchDirs(start: string, stopDir: string): string[] {
  const dirs: string[] = []
  const stop = resolve(stopDir)
  let dir = resolve(start)
  for (;;) {
    dirs.push(dir)
    const parent = dirname(dir)
    if (dir === stop || parent === dir) break
    dir = parent
  }
  return dirs
}

/**
 * False only when no place the search looks at holds a file: .walrc*, .config/walrc*, wal.config.*,
 * package.json#wal in each directory from `start` up to `stopDir`, then the global config directory.
 * Anything doubtful counts as a file.
 */
export function mightHaveConfig(start: string, stopDir: string): boolean {
  const has = (dir: string, match: (name: string) => boolean, subdir?: { name: string; match: (name: string) => boolean }, packageProperty?: string): boolean => {
    const names = namesIn(dir)
    if (names === 'unknown') return true
    if (names === null) return false
    for (const name of names) if (match(name)) return true
    if (packageProperty !== undefined && names.has('package.json') && packageJsonHas(join(dir, 'package.json'), packageProperty)) return true
    if (subdir && names.has(subdir.name)) return has(join(dir, subdir.name), subdir.match)
    return false
  }
  const walrc = (name: string): boolean => name === '.walrc' || name.startsWith('.walrc.') || name.startsWith('wal.config.')
  const configWalrc = { name: '.config', match: (name: string) => name === 'walrc' || name.startsWith('walrc.') }
  if (searchDirs(start, stopDir).some((dir) => has(dir, walrc, configWalrc, 'wal'))) return true
  return has(globalConfigDir(), (name) => name.startsWith('config'))
}

/** A config file's text: UTF-8, or UTF-16 with a byte order mark. */
function decodeText(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes)
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes)
  return bytes.toString('utf8')
}

/** A config is text of a few kilobytes: past this it is /dev/zero, a log or a mistake, and is not read to the end. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024

/** Why a file the search came upon cannot be a config (a FIFO would hang every command, a device flood it), or null. */
function notAConfigFile(filepath: string): string | null {
  const stat = statSync(filepath)
  if (stat.isDirectory()) throw Object.assign(new Error(`${filepath} is a directory`), { code: 'EISDIR' })
  return stat.isFile() ? null : 'it is not a regular file (a FIFO, socket or device)'
}

/**
 * Reads and loads one config file: null when it holds no settings for wal (a package.json without
 * "wal", a YAML `null`), `isEmpty` when it is blank. A loader's own error is thrown with the file's path.
 * One the search came upon (not named by --config or WAL_CONFIG, which may be a pipe: `--config <(…)`)
 * must be a regular file.
 */
async function readConfig(filepath: string, searched = false): Promise<FoundConfig | null> {
  const unsafe = searched ? notAConfigFile(filepath) : null
  if (unsafe !== null) {
    throw new ConfigError(`refusing to read ${filepath} as a config: ${unsafe}`, {
      code: 'WAL_CONFIG_UNSAFE',
      details: { file: filepath },
      suggestions: ['remove it, or name the config to use with --config'],
    })
  }
  const bytes = await readFileUpTo(filepath, MAX_CONFIG_BYTES)
  if (bytes === null) {
    throw new ConfigError(`${filepath}: a config is at most ${MAX_CONFIG_BYTES / 1024 / 1024} MiB; this one is larger`, { code: 'WAL_CONFIG_INVALID', details: { file: filepath } })
  }
  const content = decodeText(bytes)
  if (content.trim() === '') return { filepath, config: undefined, isEmpty: true }
  const extension = extname(filepath)
  const loader = LOADERS[(extension || 'noExt') as keyof typeof LOADERS] as Loader | undefined
  if (loader === undefined) {
    throw new ConfigError(`${filepath}: wal reads configs in YAML, JSON or JS (.walrc, .yaml, .yml, .json, .js, .mjs, .cjs, .ts), not "${extension}"`, {
      code: 'WAL_CONFIG_INVALID',
      details: { file: filepath },
    })
  }
  let config: unknown
  try {
    config = await loader(filepath, content)
  } catch (error) {
    if (error instanceof Error && !(error instanceof ConfigError) && !(error instanceof InterruptedError)) Object.assign(error, { filepath })
    throw error
  }
  if (basename(filepath, extension) === 'package') config = (config as Record<string, unknown> | null)?.wal ?? null
  if (config === null) return null
  if (config === undefined) return { filepath, config: undefined, isEmpty: true }
  return { filepath, config }
}

/** What makes a place "not there" during the search (and not an error). */
const ABSENT = new Set(['ENOENT', 'EISDIR', 'ENOTDIR', 'EACCES'])

/** Loads `path`, or searches from `cwd` (see the module comment): .walrc*, wal.config.*, package.json#wal, then ~/.config/wal. */
export async function findConfig(path: string | undefined, cwd: string | undefined): Promise<FoundConfig | null> {
  const start = resolve(cwd ?? process.cwd())
  const stopDir = searchStopDir(start)
  if (!path && !mightHaveConfig(start, stopDir)) return null
  if (path) return readConfig(resolve(path))
  const places = [...searchDirs(start, stopDir).map((dir) => [dir, SEARCH_PLACES] as const), [globalConfigDir(), GLOBAL_PLACES] as const]
  for (const [dir, names] of places) {
    for (const name of names) {
      try {
        const found = await readConfig(join(dir, name), true)
        if (found !== null && !found.isEmpty) return found
      } catch (error) {
        if (ABSENT.has((error as NodeJS.ErrnoException).code ?? '')) continue
        throw error
      }
    }
  }
  return null
}
