// `wal produce` of this tree against another build of wal (a checkout of main, say), alternating runs
// on the produce-throughput bench's input, with wall time and CPU time (user + system, from
// /usr/bin/time) of each run: the check that a change to the produce path did not make it slower.
//
//   npm run build && node bench/produce-before-after.js /path/to/other/built/wal [--records N] [--runs N]
//
// Reports medians and the after/before ratios; does not gate.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { ROOT, benchSandbox, writeInput } from './lib.js'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { records: { type: 'string', default: '100000' }, runs: { type: 'string', default: '9' } } })
const before = positionals[0]
if (!before || !existsSync(join(before, 'bin', 'run.js'))) {
  console.error('usage: node bench/produce-before-after.js OTHER_WAL_ROOT [--records N] [--runs N]')
  process.exit(2)
}
if (!existsSync('/usr/bin/time')) {
  console.error('needs /usr/bin/time for the CPU time of each run')
  process.exit(2)
}
const records = Number(values.records)
const runs = Number(values.runs)
const sandbox = benchSandbox('before-after')
const input = join(sandbox.work, 'input.ndjson')
writeInput(input, records)

function run(root) {
  const home = mkdtempSync(join(sandbox.work, 'home-'))
  const command = `/usr/bin/time -f '%e %U %S' '${process.execPath}' '${join(root, 'bin', 'run.js')}' produce -n bench < '${input}' > /dev/null`
  const result = spawnSync('bash', ['-c', command], { cwd: sandbox.cwd, env: sandbox.env(home), encoding: 'utf8' })
  rmSync(home, { recursive: true, force: true })
  if (result.status !== 0) throw new Error(`wal produce (${root}) exited ${result.status}:\n${result.stderr}`)
  const [wall, user, sys] = result.stderr.trim().split('\n').at(-1).split(' ').map(Number)
  return { wall, cpu: user + sys }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
const sides = { before: { root: before, runs: [] }, after: { root: ROOT, runs: [] } }
run(before)
run(ROOT) // warm the page cache and the compile cache
for (let i = 0; i < runs; i++) for (const side of i % 2 ? ['after', 'before'] : ['before', 'after']) sides[side].runs.push(run(sides[side].root))
const figure = (side, k) => median(sides[side].runs.map((r) => r[k]))
for (const side of ['before', 'after']) console.log(`${side.padEnd(6)} ${sides[side].root}: median wall ${figure(side, 'wall').toFixed(2)} s, cpu ${figure(side, 'cpu').toFixed(2)} s over ${runs} runs`)
const ratio = { wall: figure('after', 'wall') / figure('before', 'wall'), cpu: figure('after', 'cpu') / figure('before', 'cpu') }
console.log(`after/before: wall ${ratio.wall.toFixed(3)}, cpu ${ratio.cpu.toFixed(3)}`)
console.log(JSON.stringify({ bench: 'produce-before-after', records, runs, before: sides.before.runs, after: sides.after.runs, ratio }))
sandbox.cleanup()
