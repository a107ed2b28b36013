// The state directory holds every payload and the daemon's token: only its owner may read it, whatever
// umask the shell that ran wal had.
import { spawn } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { daemonState, killDaemons } from '../helpers/daemon.js'
import { WAL_COMMAND, makeSandbox, waitFor, type RunResult, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(async () => {
  await killDaemons(daemonState(wal)?.pid)
  wal.cleanup()
})

/** `wal ARGS` from a shell whose umask is `umask`. */
function runWithUmask(umask: string, args: readonly string[], input = ''): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const quoted = [...WAL_COMMAND, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
    const child = spawn('sh', ['-c', `umask ${umask} && exec ${quoted}`], { cwd: wal.cwd, env: wal.env })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    child.stdin.end(input)
  })
}

/** Every directory and file under `dir`, with its permission bits. */
function modes(dir: string): Array<{ path: string; mode: string }> {
  const found = [{ path: dir, mode: (statSync(dir).mode & 0o777).toString(8) }]
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) found.push(...modes(path))
    else found.push({ path, mode: (statSync(path).mode & 0o777).toString(8) })
  }
  return found
}

describe('the state directory', () => {
  for (const umask of ['000', '022']) {
    it(`is 0700 with every file 0600 under umask ${umask}: logs, key-value stores, SQLite's -wal and -shm, the daemon's files and token`, async () => {
      const produced = await runWithUmask(umask, ['produce', '-n', 'orders', '-k', 'a', '-p', '{"op":"put","table":"t","key":{"id":"a"},"item":{"id":"a"}}'])
      expect(produced.code, produced.stderr).toBe(0)
      const consumed = await runWithUmask(umask, ['consume', '-n', 'orders', '--until-idle'])
      expect(consumed.code, consumed.stderr).toBe(0)
      const started = await runWithUmask(umask, ['daemon', 'start', '--port', '0', '--json'])
      expect(started.code, started.stderr).toBe(0)
      // While the daemon runs, its SQLite files are open, -wal and -shm included.
      await waitFor(() => readdirSync(join(wal.stateDir, 'embedded')).some((f) => f.endsWith('-wal')))
      const all = modes(wal.stateDir)
      const files = all.filter((m) => statSync(m.path).isFile())
      expect(files.map((f) => f.path.slice(wal.stateDir.length + 1))).toEqual(
        expect.arrayContaining(['embedded/orders.db', 'embedded/orders.db-wal', 'embedded/orders.db-shm', 'kv/orders.db', 'daemon/daemon.json', 'daemon/daemon.log', 'daemon/daemon.pid', 'daemon/token']),
      )
      expect(all.filter((m) => (statSync(m.path).isDirectory() ? m.mode !== '700' : m.mode !== '600'))).toEqual([])
      expect((await runWithUmask(umask, ['daemon', 'stop'])).code).toBe(0)
    })
  }

  it('that others can read gets a warning naming the fix', async () => {
    mkdirSync(wal.stateDir)
    chmodSync(wal.stateDir, 0o755)
    const listed = await wal.run(['ns', 'ls'])
    expect(listed.code).toBe(0)
    expect(listed.stderr).toContain(`the state directory ${wal.stateDir} is open to other users (mode 0755)`)
    expect(listed.stderr).toContain(`chmod -R go-rwx '${wal.stateDir}'`)
    chmodSync(wal.stateDir, 0o700)
    expect((await wal.run(['ns', 'ls'])).stderr).toBe('')
  })

  it('that others can write is refused (exit 3, naming the fix), and nothing is written into it', async () => {
    mkdirSync(wal.stateDir)
    chmodSync(wal.stateDir, 0o1777)
    const produced = await wal.run(['produce', '--json', '-k', 'k', '-p', '1'])
    expect(produced.code).toBe(3)
    expect(produced.stdout).toBe('')
    const { error } = JSON.parse(produced.stderr) as { error: { code: string; message: string; suggestions: string[] } }
    expect(error.code).toBe('WAL_STATE_UNSAFE')
    expect(error.message).toBe(`the state directory ${wal.stateDir} can be written by other users (mode 0777): they could swap the log or the daemon's token`)
    expect(error.suggestions).toContain(`if it is yours: chmod -R go-rwx '${wal.stateDir}'`)
    expect(readdirSync(wal.stateDir)).toEqual([])
    // The same through a symlink to it, and for the daemon.
    const link = join(wal.dir, 'link')
    symlinkSync(wal.stateDir, link)
    expect((await wal.run(['daemon', 'start'], { env: { WAL_HOME: link } })).code).toBe(3)
    expect(existsSync(join(wal.stateDir, 'daemon'))).toBe(false)
  })

  it.runIf(process.getuid?.() === 0)('that another user owns (one planted in /tmp) is refused, even when only they can enter it', async () => {
    mkdirSync(wal.stateDir)
    chownSync(wal.stateDir, 65534, 65534)
    const listed = await wal.run(['ns', 'ls'])
    expect(listed.code).toBe(3)
    expect(listed.stderr).toContain(`the state directory ${wal.stateDir} belongs to another user (uid 65534)`)
    expect(listed.stderr).toContain('point WAL_HOME at a directory of your own')
    chownSync(wal.stateDir, 0, 0)
    chmodSync(wal.stateDir, 0o700)
    expect((await wal.run(['ns', 'ls'])).code).toBe(0)
  })
})
