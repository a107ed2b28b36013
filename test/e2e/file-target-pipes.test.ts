// The file target into a pipe: stdout (`path: "-"`) read by something slower than wal, and a FIFO.
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { makeSandbox, ndjson, waitFor, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
/** Readers started in the background, ended after each test whatever happened. */
let readers: number[] = []
beforeEach(() => {
  wal = makeSandbox()
  readers = []
})
afterEach(() => {
  for (const pid of readers) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  wal.cleanup()
})

/** Starts a shell reader of a FIFO in the background; its pid. */
function startReader(script: string): number {
  const started = spawnSync('bash', ['-c', `${script} & echo $!`], { encoding: 'utf8' })
  expect(started.status).toBe(0)
  const pid = Number(started.stdout.trim())
  readers.push(pid)
  return pid
}

const COUNT = 3000

async function produce(): Promise<void> {
  const lines = Array.from({ length: COUNT }, (_, i) => ({ key: `k${i % 50}`, payload: { i, pad: 'p'.repeat(900) } }))
  const produced = await wal.run(['produce', '-n', 'out'], { input: ndjson(lines) })
  expect(produced.code, produced.stderr).toBe(0)
}

describe('the file target into a pipe', () => {
  it('writes every line once and whole to a reader that stops reading for a while (stdout into a slow pipe)', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { out: { targets: { screen: { type: 'file', path: '-' } } } } }))
    await produce()
    const child = wal.spawn(['consume', '-n', 'out', '--until-idle'])
    let stdout = ''
    let stderr = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    // The reader stops: the pipe fills (about 64 kB, some 70 lines), and wal must wait, not cut or repeat lines.
    child.stdout!.pause()
    await new Promise((resolve) => setTimeout(resolve, 1500))
    child.stdout!.resume()
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
    expect(code, stderr).toBe(0)
    const envelopes = stdout.split('\n').filter((line) => line.startsWith('{'))
    const seen = new Map<number, number>()
    for (const line of envelopes) {
      const payload = (JSON.parse(line) as { payload: { i: number } }).payload
      seen.set(payload.i, (seen.get(payload.i) ?? 0) + 1)
    }
    expect(envelopes.length).toBe(COUNT)
    expect(seen.size).toBe(COUNT)
    expect(stdout).toContain('TARGET')
  })

  it('ends at the drain timeout after SIGTERM when the reader of its stdout has stopped, and commits nothing the reader did not take', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { out: { targets: { screen: { type: 'file', path: '-' } } } } }))
    await produce()
    const child = wal.spawn(['consume', '-n', 'out', '--drain-timeout', '1s'])
    let stdout = ''
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    // 'exit', not 'close': close waits for the paused stdout to be read to its end.
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
    // The reader stops (as a pager left open, or a SIGSTOPped jq): the pipe fills and wal's flush waits.
    child.stdout!.pause()
    await waitFor(() => stderr.includes('now consuming'))
    await new Promise((resolve) => setTimeout(resolve, 1000))
    child.kill('SIGTERM')
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000))])
    if (code === 'hung') child.kill('SIGKILL')
    expect(code, stderr).toBe(5)
    expect(stderr).toContain('could not make its last applies durable')
    // What the stopped reader had not taken was not committed: a second consumer, into a file, writes it.
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stdout!.resume()
    await new Promise((resolve) => child.stdout!.on('end', resolve))
    // Whole lines only: what came after the last newline is a line cut where the stopped reader's
    // pipe was full when wal ended (not committed, so written whole again below).
    const taken = stdout.slice(0, stdout.lastIndexOf('\n') + 1).split('\n').filter((line) => line.startsWith('{'))
    expect(taken.length).toBeLessThan(COUNT)
    const rest = join(wal.dir, 'rest.ndjson')
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { out: { targets: { screen: { type: 'file', path: rest } } } } }))
    const second = await wal.run(['consume', '-n', 'out', '--until-idle'])
    expect(second.code, second.stderr).toBe(0)
    const ids = new Set([...taken, ...readFileSync(rest, 'utf8').split('\n').filter((line) => line !== '')].map((line) => (JSON.parse(line) as { payload: { i: number } }).payload.i))
    expect(ids.size).toBe(COUNT)
  }, 90_000)

  it('with --until-idle, gives up at --idle-timeout on a reader of its stdout that stopped (exit 5, saying why)', async () => {
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { out: { targets: { screen: { type: 'file', path: '-' } } } } }))
    await produce()
    const child = wal.spawn(['consume', '-n', 'out', '--until-idle', '--idle-timeout', '2s'])
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
    child.stdout!.pause()
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000))])
    if (code === 'hung') child.kill('SIGKILL')
    child.stdout!.resume()
    expect(code, stderr).toBe(5)
    expect(stderr).toContain('it is still making its applies durable')
  }, 60_000)

  it('refuses a FIFO nobody reads at once (exit 5, naming it), and writes every line to one a reader holds', async () => {
    const fifo = join(wal.dir, 'lines.fifo')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { out: { targets: { pipe: { type: 'file', path: fifo } } } } }))
    await produce()
    const alone = await wal.run(['consume', '-n', 'out', '--until-idle'])
    expect(alone.code).toBe(5)
    expect(alone.stderr).toContain(`cannot open ${fifo} for appending: it is a FIFO that no process reads yet`)
    // A reader that starts late: the FIFO fills, and wal waits for it.
    const reader = startReader(`(sleep 1; cat) > '${fifo}.out' 2>/dev/null < '${fifo}'`)
    const consumed = await wal.run(['consume', '-n', 'out', '--until-idle'])
    expect(consumed.code, consumed.stderr).toBe(0)
    await waitForExit(reader)
    const lines = readFileSync(`${fifo}.out`, 'utf8').split('\n').filter((line) => line !== '')
    expect(lines.length).toBe(COUNT)
    expect(new Set(lines.map((line) => (JSON.parse(line) as { payload: { i: number } }).payload.i)).size).toBe(COUNT)
  })

  it('opens a FIFO again for its next reader when the one it wrote to leaves, and that reader gets every line not committed', async () => {
    const fifo = join(wal.dir, 'lines.fifo')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { out: { targets: { pipe: { type: 'file', path: fifo } } } } }))
    await produce()
    // The first reader takes 100 lines and leaves (EPIPE for wal's next write); the second comes a
    // second later. (A reader's output is redirected before it opens the FIFO: bash opens them in that
    // order, and spawnSync waits for every holder of its stdout.)
    const first = startReader(`head -n 100 > '${fifo}.first' 2>/dev/null < '${fifo}'`)
    const consume = wal.spawn(['consume', '-n', 'out', '--until-idle'])
    let stderr = ''
    consume.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => consume.on('close', (c) => resolve(c)))
    await waitForExit(first)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const second = startReader(`cat > '${fifo}.second' 2>/dev/null < '${fifo}'`)
    expect(await exited, stderr).toBe(0)
    await waitForExit(second)
    const ids = (file: string): number[] =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => (JSON.parse(line) as { payload: { i: number } }).payload.i)
    const firstIds = ids(`${fifo}.first`)
    const secondIds = ids(`${fifo}.second`)
    expect(firstIds.length).toBe(100)
    // Lines the first reader may have taken are sent again (at least once); none is lost, none cut.
    expect(new Set([...firstIds, ...secondIds]).size).toBe(COUNT)
    expect(secondIds.length).toBeLessThanOrEqual(COUNT)
  })

  it('does not write to what replaced a FIFO after its reader left: the target pauses and says why', async () => {
    const fifo = join(wal.dir, 'lines.fifo')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    writeFileSync(join(wal.cwd, '.walrc.json'), JSON.stringify({ namespaces: { out: { targets: { pipe: { type: 'file', path: fifo } } } } }))
    await produce()
    const first = startReader(`head -n 10 > /dev/null 2>&1 < '${fifo}'`)
    const consume = wal.spawn(['consume', '-n', 'out', '--until-idle', '--idle-timeout', '3s'])
    let stderr = ''
    consume.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => consume.on('close', (c) => resolve(c)))
    await waitForExit(first)
    // Another file where the FIFO was: wal must not append the log to it.
    rmSync(fifo)
    writeFileSync(fifo, 'planted\n')
    expect(await exited, stderr).toBe(5)
    expect(readFileSync(fifo, 'utf8')).toBe('planted\n')
    expect(stderr).toMatch(/names another file now|no process reads it now/)
  })
})

/** Waits for a process (not a child of this one) to end. */
async function waitForExit(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`process ${pid} did not end`)
}
