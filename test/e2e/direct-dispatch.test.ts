/**
 * A command line that names a command runs it without oclif's Config (lib/cli/direct.ts); the rest (help,
 * the version, topics, unknown commands, a word oclif would read as part of the command) goes through
 * oclif. Either way the user must see the same thing: each command line here runs as users run it
 * (bin/run.js) and all through oclif (the full table's runThroughOclif), and the two must agree in
 * output, errors, hints and exit code.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'bin', 'run.js')

let work: string
let throughOclif: string

function env(): NodeJS.ProcessEnv {
  const vars: NodeJS.ProcessEnv = { ...process.env, WAL_HOME: join(work, 'wal-home'), HOME: join(work, 'home'), XDG_CONFIG_HOME: join(work, 'xdg-config'), TZ: 'UTC' }
  delete vars.WAL_CONFIG
  delete vars.WAL_NAMESPACE
  return vars
}

function run(entry: string, args: readonly string[], input = ''): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [entry, ...args], { cwd: join(work, 'home', 'cwd'), env: env(), input, encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'wal-direct-test-'))
  mkdirSync(join(work, 'home', 'cwd'), { recursive: true })
  mkdirSync(join(work, 'xdg-config'))
  throughOclif = join(work, 'oclif.mjs')
  writeFileSync(throughOclif, `const { runThroughOclif } = await import(${JSON.stringify(pathToFileURL(join(root, 'dist', 'index.js')).href)})\nawait runThroughOclif(${JSON.stringify(pathToFileURL(bin).href)})\n`)
  // Something to read: records in two namespaces, one of them dead-lettered (not an operation for kv).
  expect(run(bin, ['produce', '-n', 'orders', '--json'], '{"key":"a","payload":{"op":"put","item":{"id":1}}}\n{"key":"b","payload":7}\n').status).toBe(0)
  expect(run(bin, ['produce', '-k', 'k', '-p', '{"x":1}']).status).toBe(0)
  expect(run(bin, ['consume', '-n', 'orders', '--until-idle']).status).not.toBeNull()
})

afterAll(() => {
  rmSync(work, { recursive: true, force: true })
})

describe.skipIf(process.env.WAL_BIN)('commands run without oclif Config', () => {
  it('answer every command line as oclif does: output, errors, hints and exit codes', () => {
    const lines: string[][] = [
      ['tail'],
      ['tail', '--json'],
      ['tail', '-n', 'orders', '--format', '%k %s\\n'],
      ['tail', 'extra'],
      ['tail', '--bogus'],
      ['tail', '--from', 'someday'],
      ['tail', '--max', '0'],
      ['tail', '-n', ''],
      ['ns', 'ls'],
      ['ns', 'ls', '--json'],
      ['ns', 'show', 'orders'],
      ['ns', 'show'],
      ['ns', 'show', 'nope'],
      ['ns'],
      ['dlq', 'ls', '-n', 'orders'],
      ['dlq', 'stats', '-n', 'orders', '--json'],
      ['dlq', 'show'],
      ['dlq', 'show', 'nope', '-n', 'orders'],
      ['dlq'],
      ['offsets', 'show', '-n', 'orders'],
      ['config', 'show'],
      ['config', 'validate'],
      ['config', 'get-contexts'],
      ['explain', 'nope'],
      ['daemon', 'status'],
      ['help'],
      ['help', 'tail'],
      ['version'],
      ['--version'],
      ['tail', '--help'],
      ['nope'],
      ['tial'],
      ['dlq', 'lss'],
    ]
    for (const args of lines) {
      const expected = run(throughOclif, args)
      expect(run(bin, args), `wal ${args.join(' ')}`).toEqual(expected)
    }
  })
})
