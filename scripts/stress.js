#!/usr/bin/env node
// Runs the test suite on a busy machine: one CPU hog per core (more with --hogs N), started before the
// suite and stopped after it, whatever way it ends. A test that passes here does not depend on the
// machine being idle; a test that fails here has a timing assumption to fix at its cause.
//
//   npm run test:stress [-- --hogs N] [-- VITEST_ARGS…]
import { spawn } from 'node:child_process'
import { availableParallelism, loadavg } from 'node:os'

const args = process.argv.slice(2)
let hogCount = availableParallelism()
const hogsAt = args.indexOf('--hogs')
if (hogsAt !== -1) {
  hogCount = Number(args[hogsAt + 1])
  if (!Number.isSafeInteger(hogCount) || hogCount < 0 || hogCount > 64) {
    process.stderr.write(`stress: --hogs takes a whole number from 0 to 64, got ${JSON.stringify(args[hogsAt + 1])}\n`)
    process.exit(2)
  }
  args.splice(hogsAt, 2)
}

// A hog spins on one core. It also watches its parent so that it ends if this script is killed.
const hogSource = `const parent = ${process.pid}; let n = 0; for (;;) { if (++n % 1e8 === 0) { try { process.kill(parent, 0) } catch { process.exit(0) } } }`
const hogs = Array.from({ length: hogCount }, () => spawn(process.execPath, ['-e', hogSource], { stdio: 'ignore' }))
const stopHogs = () => {
  for (const hog of hogs) if (hog.exitCode === null) hog.kill('SIGKILL')
}
process.on('exit', stopHogs)

const started = Date.now()
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ')
process.stderr.write(`stress: ${hogCount} CPU hogs running; load ${load()}; npm test ${args.join(' ')}\n`)
const suite = spawn('npm', ['test', '--', ...args], { stdio: 'inherit' })
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    suite.kill(signal)
    stopHogs()
  })
}
suite.on('close', (code, signal) => {
  stopHogs()
  const seconds = Math.round((Date.now() - started) / 1000)
  process.stderr.write(`stress: the suite ${code === 0 ? 'passed' : `failed (${signal ?? `exit ${code}`})`} in ${seconds} s under ${hogCount} CPU hogs; load at the end ${load()}\n`)
  process.exit(code ?? 1)
})
