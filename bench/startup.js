// Start-up cost of one `wal` invocation, the way scripts use it: `wal produce` once per mutation, in a loop.
// Measured against bare `node -e 0`, so the figures are ratios to Node's own start-up on this machine
// rather than milliseconds that only mean something on the machine they were taken on.
//
//   npm run build && node bench/startup.js
//
// Reports wall and CPU time (user + system, what the process itself used: steadier than wall time on a
// busy machine), each as a ratio of medians. With dist/wal there (npm run build:binary), the single
// executable's `--version` is measured beside bin/run.js's (wall time only: it takes no preload); it starts
// its own Node, so the figure includes what `node -e 0` costs. Does not gate on the ratios. Exits 1 only
// when a command fails.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

import { BIN, ROOT, benchSandbox, median, round1, runOrExit } from './lib.js'

const RUNS = 30
const WARMUPS = 3
const AIM_VERSION = 2
const AIM_PRODUCE = 2.5

const sandbox = benchSandbox('startup')
const { cwd } = sandbox
// One state dir for every produce run: a script's loop appends to the same, growing log.
const env = sandbox.env(join(sandbox.work, 'wal-home'))

// Each process writes its own CPU time (process.cpuUsage, from its start) on exit, from a preload that
// all of them get alike.
const cpuFile = join(sandbox.work, 'cpu.txt')
const preload = join(sandbox.work, 'cpu-on-exit.cjs')
writeFileSync(preload, `process.on('exit', () => { const u = process.cpuUsage(); require('node:fs').writeFileSync(${JSON.stringify(cpuFile)}, String((u.user + u.system) / 1000)) })\n`)

// process.execPath for all of them, so each pays the same Node start-up and only wal's own work differs.
const commands = [
  { name: 'node -e 0', args: ['-e', '0'] },
  { name: 'wal --version', args: [BIN, '--version'] },
  { name: 'wal produce -p', args: [BIN, 'produce', '-k', 'k', '-p', '{"a":1}'] },
  // Other commands scripts and operators run often (no aim of the issue's own: reported beside).
  { name: 'wal tail --from -1', args: [BIN, 'tail', '--from', '-1'] },
  { name: 'wal ns ls', args: [BIN, 'ns', 'ls'] },
]
const BINARY = join(ROOT, 'dist', 'wal')
if (existsSync(BINARY)) commands.push({ name: 'dist/wal --version', exe: BINARY, args: ['--version'] })

function runOnce(command) {
  writeFileSync(cpuFile, '')
  const started = performance.now()
  const result = command.exe
    ? spawnSync(command.exe, command.args, { cwd, env, encoding: 'utf8' })
    : spawnSync(process.execPath, ['-r', preload, ...command.args], { cwd, env, encoding: 'utf8' })
  const ms = performance.now() - started
  if (result.status !== 0) {
    throw new Error(`${command.name} exited ${result.status ?? result.signal ?? result.error?.message}:\n${result.stderr}`)
  }
  return { ms, cpuMs: command.exe ? Number.NaN : Number(readFileSync(cpuFile, 'utf8')) }
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length

const times = commands.map(() => [])
const cpuTimes = commands.map(() => [])
await runOrExit(() => {
  // Warm-ups fill the OS file cache and Node's compile cache (bin/run.js enables it), as in a loop.
  for (let i = 0; i < WARMUPS; i++) for (const command of commands) runOnce(command)
  // Interleaved, so drift in machine load spreads over all the commands instead of biasing one.
  for (let i = 0; i < RUNS; i++) {
    commands.forEach((command, c) => {
      const { ms, cpuMs } = runOnce(command)
      times[c].push(ms)
      cpuTimes[c].push(cpuMs)
    })
  }
}, sandbox.cleanup)

const stats = commands.map((command, c) => ({ name: command.name, meanMs: mean(times[c]), medianMs: median(times[c]), cpuMedianMs: median(cpuTimes[c]) }))
const [node, version, produce] = stats
const binary = stats.find((s) => s.name === 'dist/wal --version')
const others = stats.filter((s) => s.name.startsWith('wal ') && s !== version && s !== produce)
for (const s of stats) console.log(`${s.name.padEnd(18)} wall mean ${s.meanMs.toFixed(1)} ms, median ${s.medianMs.toFixed(1)} ms${s === binary ? '' : `; CPU median ${s.cpuMedianMs.toFixed(1)} ms`}`)
// Ratios of medians: one slow outlier run (a GC, a scheduler hiccup) should not move the headline.
const versionRatio = version.medianMs / node.medianMs
const produceRatio = produce.medianMs / node.medianMs
const versionCpuRatio = version.cpuMedianMs / node.cpuMedianMs
const produceCpuRatio = produce.cpuMedianMs / node.cpuMedianMs
console.log(
  `start-up (median of ${RUNS}), wall: --version ${versionRatio.toFixed(2)}x node -e 0 (aim <= ${AIM_VERSION}x), produce ${produceRatio.toFixed(2)}x node -e 0 (aim <= ${AIM_PRODUCE}x)`,
)
console.log(
  `start-up (median of ${RUNS}), CPU:  --version ${versionCpuRatio.toFixed(2)}x node -e 0 (aim <= ${AIM_VERSION}x), produce ${produceCpuRatio.toFixed(2)}x node -e 0 (aim <= ${AIM_PRODUCE}x)`,
)
console.log(`start-up (median of ${RUNS}), CPU:  ${others.map((s) => `${s.name.slice(4)} ${(s.cpuMedianMs / node.cpuMedianMs).toFixed(2)}x`).join(', ')} node -e 0`)
if (binary) console.log(`dist/wal --version: median ${binary.medianMs.toFixed(1)} ms, ${(binary.medianMs / version.medianMs).toFixed(2)}x bin/run.js --version (wall)`)
console.log(
  JSON.stringify({
    bench: 'startup',
    runs: RUNS,
    warmups: WARMUPS,
    commands: Object.fromEntries(stats.map((s) => [s.name, { meanMs: round1(s.meanMs), medianMs: round1(s.medianMs), ...(s === binary ? {} : { cpuMedianMs: round1(s.cpuMedianMs) }) }])),
    versionRatio: Number(versionRatio.toFixed(3)),
    produceRatio: Number(produceRatio.toFixed(3)),
    versionCpuRatio: Number(versionCpuRatio.toFixed(3)),
    produceCpuRatio: Number(produceCpuRatio.toFixed(3)),
    versionRatioOfMeans: Number((version.meanMs / node.meanMs).toFixed(3)),
    produceRatioOfMeans: Number((produce.meanMs / node.meanMs).toFixed(3)),
    ...(binary ? { binaryVersionMedianMs: round1(binary.medianMs), binaryVsRunJs: Number((binary.medianMs / version.medianMs).toFixed(3)) } : {}),
    aim: { version: AIM_VERSION, produce: AIM_PRODUCE },
    node: process.version,
  }),
)
