import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { BIN, WAL_SHELL, jsonLines, makeSandbox, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

/** A Node older than 22.13 on this machine, if there is one (the system Node here is 20). */
function oldNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(candidate)) continue
    const version = execFileSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim()
    const [major, minor] = version.split('.').map(Number)
    if (major! < 22 || (major === 22 && minor! < 13)) return candidate
  }
  return undefined
}

describe('the wal binary', () => {
  const old = oldNode()
  it.runIf(old !== undefined)('tells the user to upgrade when run on an old Node, instead of crashing', () => {
    const result = spawnSync(old!, [BIN, '--version'], { encoding: 'utf8' })
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch(/wal needs Node\.js 22\.13 or newer .* this is Node\.js v\d+/)
    expect(result.stderr).toMatch(/hint: install Node\.js 24/)
  })

  it('lists its commands and examples in --help', async () => {
    const help = await wal.run(['--help'])
    expect(help.code).toBe(0)
    for (const command of ['produce', 'tail', 'config', 'ns']) expect(help.stdout).toContain(command)
    const produce = await wal.run(['produce', '--help'])
    expect(produce.stdout).toMatch(/EXAMPLES/)
    expect(produce.stdout).toMatch(/--idempotency-key/)
  })

  it('reads config from package.json#wal and from .walrc.cjs', async () => {
    writeFileSync(join(wal.cwd, 'package.json'), JSON.stringify({ name: 'app', wal: { namespaces: { fromPkg: { partitions: 2 } } } }))
    const fromPkg = await wal.run(['ns', 'ls', '--json'])
    expect(fromPkg.code).toBe(0)
    expect((JSON.parse(fromPkg.stdout) as { namespaces: Array<{ name: string }> }).namespaces.map((n) => n.name)).toEqual(['fromPkg'])
    // package.json comes first in the search; without a "wal" key it is passed over.
    writeFileSync(join(wal.cwd, 'package.json'), JSON.stringify({ name: 'app' }))
    writeFileSync(join(wal.cwd, '.walrc.cjs'), 'module.exports = { namespaces: { fromJs: { partitions: 3 } } }')
    const fromJs = await wal.run(['ns', 'show', 'fromJs', '--json'])
    expect(fromJs.code).toBe(0)
    expect(JSON.parse(fromJs.stdout)).toMatchObject({ name: 'fromJs', partitions: 3, declared: true, records: null })
    // Reading a declared namespace nobody wrote to shows it empty, and creates nothing.
    const tailed = await wal.run(['tail', '-n', 'fromJs'])
    expect(tailed).toMatchObject({ code: 0, stdout: '' })
    expect(existsSync(join(wal.stateDir, 'embedded', 'fromJs.db'))).toBe(false)
  })

  it('shows namespaces with their partition offsets', async () => {
    await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '1'])
    await wal.run(['produce', '-n', 'orders', '-k', 'a', '-p', '2'])
    const shown = JSON.parse((await wal.run(['ns', 'show', 'orders', '--json'])).stdout) as {
      records: number
      marks: Array<{ partition: number; low: number; high: number }>
      log: { location: string }
    }
    expect(shown.records).toBe(2)
    expect(shown.marks).toHaveLength(8)
    expect(shown.marks.reduce((n, m) => n + m.high, 0)).toBe(2)
    expect(shown.log.location).toBe(join(wal.stateDir, 'embedded', 'orders.db'))
    const text = await wal.run(['ns', 'ls'])
    expect(text.stdout).toMatch(/^NAME\s+BACKEND\s+PARTITIONS\s+RECORDS/)
    expect(text.stdout).toMatch(/orders\s+embedded\s+8\s+2/)
  })

  it('prints readable text by default and envelopes with --json', async () => {
    await wal.run(['produce', '-k', 'user-1', '-p', '{"a":1}', '-H', 'src=x'])
    const text = await wal.run(['tail'])
    expect(text.stdout).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z \d+:0 key="user-1" src="x" \{"a":1\}\n$/)
    expect(jsonLines((await wal.run(['tail', '--json'])).stdout)[0]).toMatchObject({ key: 'user-1', headers: { src: 'x' } })
  })

  it('exits quietly when its reader goes away (wal tail | head)', async () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ key: `k${i}`, payload: i })).join('\n')
    await wal.run(['produce'], { input: lines })
    const result = spawnSync('bash', ['-c', `${WAL_SHELL} tail | head -n 3`], { env: { ...process.env, ...wal.env }, cwd: wal.cwd, encoding: 'utf8' })
    expect(result.stdout.split('\n').filter(Boolean)).toHaveLength(3)
    expect(result.stderr).toBe('')
  })
})
