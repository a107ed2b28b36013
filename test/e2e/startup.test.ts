/**
 * Start-up stays light: the paths scripts call in loops (`--version`, `--help`, one embedded `produce`)
 * must not load a broker SDK or the TypeScript compiler. The build keeps those external and the adapters
 * import them lazily; this checks that nothing pulls them in anyway, by recording every module URL the
 * real `wal` process resolves (run on the built bundle: `npm test` builds first).
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'bin', 'run.js')
const HEAVY = /kafkajs|@aws-sdk|cassandra-driver|typescript/

// Synchronous hooks (module.registerHooks, Node >= 22.15 / 23.5) see ESM imports and require() alike,
// and run in the same thread, so the list can be written on 'exit' without any message passing.
const PRELOAD = `
import { registerHooks } from 'node:module'
import { writeFileSync } from 'node:fs'
const urls = []
registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context)
    urls.push(result.url)
    return result
  },
})
process.on('exit', () => writeFileSync(process.env.WAL_TEST_RESOLVED_FILE, JSON.stringify(urls)))
`

let work: string
let preloadUrl: string
let home: string
let xdgConfig: string
let runs = 0

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'wal-startup-test-'))
  const preload = join(work, 'record-resolved.mjs')
  writeFileSync(preload, PRELOAD)
  preloadUrl = pathToFileURL(preload).href
  // Empty HOME and XDG_CONFIG_HOME, with the cwd inside HOME so the config search stops there.
  home = join(work, 'home')
  xdgConfig = join(work, 'xdg-config')
  mkdirSync(join(home, 'cwd'), { recursive: true })
  mkdirSync(xdgConfig)
})

afterAll(() => {
  rmSync(work, { recursive: true, force: true })
})

/** Runs the built `wal` with the recording preload; returns its result and every URL it resolved. */
function runWal(args: string[], cwd = join(home, 'cwd')): { status: number | null; stdout: string; stderr: string; urls: string[] } {
  const resolvedFile = join(work, `resolved-${++runs}.json`)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WAL_HOME: join(work, 'wal-home'),
    HOME: home,
    XDG_CONFIG_HOME: xdgConfig,
    WAL_TEST_RESOLVED_FILE: resolvedFile,
  }
  delete env.WAL_CONFIG
  delete env.NODE_OPTIONS // vitest's own loaders must not show up in (or change) the list
  // NODE_ENV stays as vitest sets it ("test"): wal must stay light even where developers set
  // NODE_ENV=development or test, which oclif otherwise treats as a reason to load TypeScript.
  const result = spawnSync(process.execPath, ['--import', preloadUrl, bin, ...args], {
    cwd,
    env,
    encoding: 'utf8',
  })
  let urls: string[] = []
  try {
    urls = JSON.parse(readFileSync(resolvedFile, 'utf8')) as string[]
  } catch {
    // No file: the preload did not run; the non-empty assertion below reports it.
  }
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, urls }
}

/**
 * The recording saw wal itself load (so an empty or broken recording cannot pass), and nothing heavy.
 * `entry` is the bundle bin/run.js starts: the full command table, or `wal produce`'s own.
 */
function expectLightStartup(urls: string[], entry = 'index.js'): void {
  expect(urls.length).toBeGreaterThan(0)
  expect(urls.some((url) => url.endsWith(`/dist/${entry}`))).toBe(true)
  expect(urls.filter((url) => HEAVY.test(url))).toEqual([])
}

/** The bundle files a run loaded, with their text. */
function loadedBundleFiles(urls: string[]): { url: string; text: string }[] {
  return [...new Set(urls)].filter((url) => url.startsWith('file:') && url.includes('/dist/')).map((url) => ({ url, text: readFileSync(fileURLToPath(url), 'utf8') }))
}

// Text that only the YAML parser (js-yaml) carries, minified or not.
const CONFIG_LIBRARY = /tag:yaml\.org,2002/

// A preload (--import) watches what bin/run.js loads; the single executable (WAL_BIN) runs the same
// bundle, unpacked, and is checked for laziness by test/e2e/binary.test.ts instead.
describe.skipIf(process.env.WAL_BIN)('start-up', () => {
  it('answers `wal --version` with the name, version, platform and Node, without loading the CLI bundle', () => {
    const run = runWal(['--version'])
    expect(run.status, run.stderr).toBe(0)
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
    expect(run.stdout).toBe(`wal/${version} ${process.platform}-${process.arch} node-${process.version}\n`)
    expect(run.urls.some((url) => url.endsWith('/bin/run.js'))).toBe(true)
    expect(run.urls.filter((url) => url.includes('/dist/') || HEAVY.test(url))).toEqual([])
  })

  it('does not load the Kafka, SQS or Cassandra SDKs for `wal --help`', () => {
    const run = runWal(['--help'])
    expect(run.status, run.stderr).toBe(0)
    expectLightStartup(run.urls)
  })

  it('does not load the Kafka, SQS or Cassandra SDKs for `wal produce -p` to an embedded namespace', () => {
    const run = runWal(['produce', '-k', 'k', '-p', '{"a":1}'])
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain('durable=true')
    expectLightStartup(run.urls, 'produce-main.js')
  })

  it('does not load the YAML parser for `wal produce` when no config file exists', () => {
    const run = runWal(['produce', '-k', 'k', '-p', '{"a":1}'])
    expect(run.status, run.stderr).toBe(0)
    const files = loadedBundleFiles(run.urls)
    expect(files.length).toBeGreaterThan(0)
    expect(files.filter((file) => CONFIG_LIBRARY.test(file.text)).map((file) => file.url)).toEqual([])
  })

  it('loads no other command\'s code for `wal produce`', () => {
    const run = runWal(['produce', '-k', 'k', '-p', '{"a":1}'])
    expect(run.status, run.stderr).toBe(0)
    // Each command's summary is in its own module; of them, only produce's may be loaded.
    const files = loadedBundleFiles(run.urls)
    expect(files.some((file) => file.text.includes('Write mutations to the log'))).toBe(true)
    expect(files.filter((file) => /Put DLQ entries back into the log|Run the daemon in the foreground|Show a namespace's effective settings/.test(file.text)).map((file) => file.url)).toEqual([])
  })

  it('loads no other command\'s library, and no network target, for `wal consume` to the embedded targets', () => {
    const dir = join(home, 'consume-only')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { out: { type: 'file', path: join(dir, 'out.ndjson') }, store: { type: 'kv' } } } } }))
    const produced = runWal(['produce', '-n', 'orders', '-k', 'k', '-p', '{"op":"put","table":"t","key":{"id":1},"item":{"a":1}}'], dir)
    expect(produced.status, produced.stderr).toBe(0)
    const run = runWal(['consume', '-n', 'orders', '--until-idle'], dir)
    expect(run.status, run.stderr).toBe(0)
    expect(readFileSync(join(dir, 'out.ndjson'), 'utf8')).toContain('"payload":{"op":"put"')
    expectLightStartup(run.urls)
    const files = loadedBundleFiles(run.urls)
    // Text only tail's, produce's, the DLQ commands' and the Kafka target's code carries.
    const others = /a queue has no offsets and no history|is not name=value|raise the topic's max\.message\.bytes|Filtrex|replay.*--max-replays/
    expect(files.filter((file) => others.test(file.text)).map((file) => `${file.url}: ${others.exec(file.text)![0]}`)).toEqual([])
  })

  it('still finds a YAML config file next to the command, and uses it', () => {
    const dir = join(home, 'with-config')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, '.walrc.yaml'), 'namespaces:\n  orders:\n    partitions: 3\n')
    const resolvedFile = join(work, `resolved-${++runs}.json`)
    const env: NodeJS.ProcessEnv = { ...process.env, WAL_HOME: join(work, 'wal-home-config'), HOME: home, XDG_CONFIG_HOME: xdgConfig, WAL_TEST_RESOLVED_FILE: resolvedFile }
    delete env.WAL_CONFIG
    delete env.NODE_OPTIONS
    const result = spawnSync(process.execPath, ['--import', preloadUrl, bin, 'ns', 'show', 'orders', '--json'], { cwd: dir, env, encoding: 'utf8' })
    expect(result.status, result.stderr).toBe(0)
    expect((JSON.parse(result.stdout) as { partitions: number }).partitions).toBe(3)
    const files = loadedBundleFiles(JSON.parse(readFileSync(resolvedFile, 'utf8')) as string[])
    expect(files.some((file) => CONFIG_LIBRARY.test(file.text))).toBe(true)
  })
})

describe('the compile cache', () => {
  function runWithCache(cacheHome: string): void {
    const env: NodeJS.ProcessEnv = { ...process.env, WAL_HOME: join(work, 'wal-home-cache'), HOME: home, XDG_CONFIG_HOME: xdgConfig, XDG_CACHE_HOME: cacheHome }
    delete env.NODE_COMPILE_CACHE
    delete env.NODE_DISABLE_COMPILE_CACHE
    delete env.NODE_OPTIONS
    const result = spawnSync(process.execPath, [bin, 'ns', 'ls'], { cwd: join(home, 'cwd'), env, encoding: 'utf8' })
    expect(result.status, result.stderr).toBe(0)
  }

  it("is kept in the user's own 0700 directory under XDG_CACHE_HOME", () => {
    const cacheHome = join(work, 'cache-own')
    runWithCache(cacheHome)
    const dir = join(cacheHome, 'wal', 'compile-cache')
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(readdirSync(dir).length).toBeGreaterThan(0)
  })

  it('is not used when others could swap its directory (a parent writable by all)', () => {
    const cacheHome = join(work, 'cache-shared')
    mkdirSync(join(cacheHome, 'wal'), { recursive: true })
    chmodSync(join(cacheHome, 'wal'), 0o777)
    runWithCache(cacheHome)
    expect(readdirSync(join(cacheHome, 'wal', 'compile-cache'))).toEqual([])
  })
})
