/**
 * Start-up stays light: the paths scripts call in loops (`--version`, `--help`, one embedded `produce`)
 * must not load a broker SDK or the TypeScript compiler. The build keeps those external and the adapters
 * import them lazily; this checks that nothing pulls them in anyway, by recording every module URL the
 * real `wal` process resolves (run on the built bundle: `npm test` builds first).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
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
function runWal(args: string[]): { status: number | null; stdout: string; stderr: string; urls: string[] } {
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
    cwd: join(home, 'cwd'),
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

/** The recording saw wal itself load (so an empty or broken recording cannot pass), and nothing heavy. */
function expectLightStartup(urls: string[]): void {
  expect(urls.length).toBeGreaterThan(0)
  expect(urls.some((url) => url.endsWith('/dist/index.js'))).toBe(true)
  expect(urls.filter((url) => HEAVY.test(url))).toEqual([])
}

// A preload (--import) watches what bin/run.js loads; the single executable (WAL_BIN) runs the same
// bundle, unpacked, and is checked for laziness by test/e2e/binary.test.ts instead.
describe.skipIf(process.env.WAL_BIN)('start-up', () => {
  it('does not load the Kafka, SQS or Cassandra SDKs for `wal --version`', () => {
    const run = runWal(['--version'])
    expect(run.status, run.stderr).toBe(0)
    expectLightStartup(run.urls)
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
    expectLightStartup(run.urls)
  })
})
