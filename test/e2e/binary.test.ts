/**
 * The single executable (dist/wal, `npm run build:binary`) on a host with no Node on the PATH. Runs when
 * the binary has been built (`npm run test:binary` builds it, then runs the whole e2e suite against it).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { makeSandbox, ROOT, type Sandbox } from '../helpers/wal.js'

const BINARY = join(ROOT, 'dist', 'wal')

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

describe.runIf(existsSync(BINARY))('the single executable dist/wal', () => {
  const run = (args: string[], env: Record<string, string | undefined> = {}, input = '') => {
    const merged: Record<string, string> = { ...wal.env, PATH: '/nonexistent' }
    delete merged.WAL_BINARY_CACHE
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k]
    else merged[k] = v
    return spawnSync(BINARY, args, { cwd: wal.cwd, env: merged, encoding: 'utf8', input })
  }

  it('runs with no Node on the PATH, unpacking itself once into a private cache directory', () => {
    const first = run(['version', '--json'])
    expect(first.stderr).toBe('')
    expect(first.status).toBe(0)
    expect(JSON.parse(first.stdout)).toMatchObject({ build: 'binary', node: expect.stringMatching(/^24\./), platform: 'linux', arch: 'x64' })
    const cache = join(wal.env.HOME!, '.cache', 'wal')
    const [build] = readdirSync(cache)
    expect(build).toMatch(/^\d+\.\d+\.\d+-[0-9a-f]{16}$/)
    expect(statSync(join(cache, build!)).mode & 0o077).toBe(0)
    // A write and a read back, on node:sqlite inside the binary.
    const produced = run(['produce', '-k', 'a', '-p', '{"op":"put","table":"t","key":{"id":1},"item":{"id":1}}'])
    expect(produced.status).toBe(0)
    expect(produced.stdout).toMatch(/durable=true/)
    const consumed = run(['consume', '--until-idle'])
    expect(consumed.status).toBe(0)
    expect(run(['tail', '--json']).stdout).toContain('"key":"a"')
    expect(readdirSync(cache)).toEqual([build])
  })

  it('unpacks once when several first runs start together, and clears what a killed unpack left', async () => {
    const cache = join(wal.dir, 'cache')
    mkdirSync(cache, { mode: 0o700 })
    const { readdirSync: list } = await import('node:fs')
    // A leftover of an unpack whose process is gone.
    mkdirSync(join(cache, 'x'), { mode: 0o700 })
    const env = { ...wal.env, PATH: '/nonexistent', WAL_BINARY_CACHE: cache }
    const { spawn } = await import('node:child_process')
    const runs = Array.from({ length: 4 }, () =>
      new Promise<number | null>((resolve) => {
        const child = spawn(BINARY, ['version', '--json'], { cwd: wal.cwd, env, stdio: 'ignore' })
        child.on('close', resolve)
      }),
    )
    expect(await Promise.all(runs)).toEqual([0, 0, 0, 0])
    const [build] = list(cache).filter((n) => n !== 'x')
    mkdirSync(join(cache, `${build}.partial-999999999`), { mode: 0o700 })
    rmSync(join(cache, build!), { recursive: true })
    expect(run(['--version'], { WAL_BINARY_CACHE: cache }).status).toBe(0)
    expect(list(cache).sort()).toEqual([build, 'x'])
  })

  it('says what is wrong and exits 1 when it cannot unpack anywhere', () => {
    const blocker = join(wal.dir, 'not-a-dir')
    writeFileSync(blocker, '')
    const result = run(['--version'], { XDG_CACHE_HOME: blocker, HOME: blocker, TMPDIR: blocker })
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch(/^wal: cannot unpack wal's files/)
    expect(result.stderr).toContain('hint: make ~/.cache writable, or set WAL_BINARY_CACHE')
    expect(result.stdout).toBe('')
  })

  it('passes over a cache directory that others may write to', () => {
    const shared = join(wal.dir, 'shared-cache')
    mkdirSync(shared, { mode: 0o777 })
    spawnSync('chmod', ['0777', shared])
    const result = run(['--version'], { WAL_BINARY_CACHE: shared })
    expect(result.status).toBe(0)
    expect(readdirSync(shared)).toEqual([])
    expect(readdirSync(join(wal.env.HOME!, '.cache', 'wal'))).toHaveLength(1)
  })

  it('exits with wal\'s own codes: 2 for a typo, 7 for nothing there', () => {
    const typo = run(['prodcue'])
    expect(typo.status).toBe(2)
    expect(typo.stderr).toContain('did you mean: wal produce')
    expect(run(['dlq', 'show', '01M92WEFDPTXXS267QR98YH464']).status).toBe(7)
  })
})

// `npm run build:binary -- --target linux-arm64`, run through qemu-user with Debian's arm64 libraries
// (apt-get install qemu-user libc6-arm64-cross libstdc++6-arm64-cross), when both are there.
const ARM64 = join(ROOT, 'dist', 'wal-linux-arm64')
const QEMU = spawnSync('sh', ['-c', 'command -v qemu-aarch64'], { encoding: 'utf8' }).stdout.trim()
describe.runIf(existsSync(ARM64) && QEMU !== '' && existsSync('/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1'))('the linux-arm64 executable', () => {
  it('writes, applies and reads back on arm64, with the same Node inside', () => {
    const env = { ...wal.env, PATH: '/nonexistent' }
    delete (env as Record<string, string | undefined>).WAL_BINARY_CACHE
    const run = (args: string[]) => spawnSync(QEMU, ['-L', '/usr/aarch64-linux-gnu', ARM64, ...args], { cwd: wal.cwd, env, encoding: 'utf8', timeout: 300_000 })
    expect(JSON.parse(run(['version', '--json']).stdout)).toMatchObject({ arch: 'arm64', build: 'binary', node: process.versions.node })
    expect(run(['produce', '-k', 'a', '-p', '{"op":"put","table":"t","key":{"id":1},"item":{"id":1}}']).status).toBe(0)
    expect(run(['consume', '--until-idle']).status).toBe(0)
    expect(run(['tail', '--json']).stdout).toContain('"key":"a"')
  }, 600_000)
})

