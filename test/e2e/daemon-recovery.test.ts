/**
 * The daemon after an operator's mistakes and crashes: a reload of a broken config when the token is
 * in that config, and a start after `kill -9` while the dead daemon is still a zombie.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { daemonState, killDaemons, startForegroundDaemon } from '../helpers/daemon.js'
import { BIN, makeSandbox, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
let detachedPid: number | undefined
let parent: ChildProcess | undefined
beforeEach(() => {
  wal = makeSandbox()
  detachedPid = undefined
  parent = undefined
})
afterEach(async () => {
  parent?.kill('SIGKILL')
  await killDaemons(detachedPid)
  wal.cleanup()
})

const TOKEN = 'a-token-of-the-config-file-0123456789'

function configure(store: Record<string, unknown>): void {
  writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: { targets: { store } } }, daemon: { port: 0, token: TOKEN } }))
}

describe('wal daemon reload with daemon.token in the config file', () => {
  it('an invalid config: exit 3 with the config error (the token is read from the file being reloaded)', async () => {
    configure({ type: 'kv' })
    await startForegroundDaemon(wal)
    configure({ type: 'kv', pth: 'x' })
    const reload = await wal.run(['daemon', 'reload'])
    expect(reload.code).toBe(3)
    expect(reload.stderr).toContain('config rejected, still running the previous one')
    expect(reload.stderr).toContain('namespaces.orders.targets.store.pth')
    expect(reload.stderr).not.toContain('bearer token')
  })

  it('a config whose daemon section itself is invalid: exit 3 with that config error, not a refused token', async () => {
    configure({ type: 'kv' })
    await startForegroundDaemon(wal)
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { orders: {} }, daemon: { port: 0, token: TOKEN, maxInFlight: -1 } }))
    const reload = await wal.run(['daemon', 'reload'])
    expect(reload.code).toBe(3)
    expect(reload.stderr).toContain('daemon.maxInFlight')
    expect(reload.stderr).not.toContain('bearer token')
  })
})

describe('wal daemon start after kill -9', () => {
  it('starts although the dead daemon is still a zombie (its parent has not reaped it)', async () => {
    configure({ type: 'kv' })
    // A parent that never waits for its child: the daemon killed below stays a zombie while the parent lives.
    const script = 'import subprocess, sys, time\np = subprocess.Popen(sys.argv[1:])\nprint(p.pid, flush=True)\ntime.sleep(600)\n'
    parent = spawn('python3', ['-c', script, process.execPath, BIN, 'daemon', 'run', '--port', '0'], { cwd: wal.cwd, env: wal.env, stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    parent.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    const pid = await waitFor(() => Number(out.trim()) || 0, { timeoutMs: 30_000 })
    detachedPid = pid
    await waitFor(() => daemonState(wal)?.pid === pid, { timeoutMs: 30_000 })
    process.kill(pid, 'SIGKILL')
    await waitFor(() => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
    })

    const status = await wal.run(['daemon', 'status'])
    expect(status.code).toBe(7)
    const start = await wal.run(['daemon', 'start', '--json'])
    expect(start.code, start.stderr).toBe(0)
    const started = JSON.parse(start.stdout) as { pid: number }
    expect(started.pid).not.toBe(pid)
    detachedPid = started.pid
    expect((await wal.run(['daemon', 'status'])).code).toBe(0)
    const stop = await wal.run(['daemon', 'stop'])
    expect(stop.code, stop.stderr).toBe(0)
  })

  it('a pid file naming a live process that is not a wal daemon does not block start', async () => {
    configure({ type: 'kv' })
    const daemon = await startForegroundDaemon(wal)
    process.kill(daemon.pid, 'SIGKILL')
    await daemon.exited
    // The pid is taken by another program since (here: this test's own runner).
    writeFileSync(join(wal.stateDir, 'daemon', 'daemon.pid'), `${process.pid}\n`)
    const start = await wal.run(['daemon', 'start', '--json'])
    expect(start.code, start.stderr).toBe(0)
    detachedPid = (JSON.parse(start.stdout) as { pid: number }).pid
    expect((await wal.run(['daemon', 'stop'])).code).toBe(0)
  })
})
