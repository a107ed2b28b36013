// What a log's size costs the commands that should not depend on it: `tail --from TIME` (nothing that
// recent: it only finds where to start), `tail --from -10` (the last ten), `ns show`, a one-mutation
// `wal produce -p`, on embedded logs of 10k, 100k and 1M records (and 10M with --huge); and the peak
// memory of the commands that go through the whole log: a full `wal tail --json` into a pipe, `wal
// consume --until-idle` of every record to a file target, and the `wal produce` of its lines that wrote
// it. Reported as CPU time (medians of interleaved rounds) and as ratios to the smallest log: flat means
// about 1x.
//
//   npm run build && node bench/log-size.js [--records N] [--huge]
//     N: the largest log (default 1,000,000); --huge adds a log of 10 x N records to the CPU rows.
//
// The logs are written once by a raw loader (bench/lib.js cachedLog, kept in ~/.cache/wal-bench or
// $WAL_BENCH_CACHE) and copied for each run. Reports; does not gate on the ratios. Exits 1 only when a
// command fails.
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { BIN, benchSandbox, cachedLog, countLabel, countRecords, median, recordsOption, round1, runOrExit, spawnTimed, writeInput } from './lib.js'

const ROUNDS = 5
const MEMORY_ROUNDS = 3
const NAMESPACE = 'bench'
/** Where `wal produce` writes the lines of the memory rows, beside the copied log. */
const FILL = 'fill'
const largest = recordsOption(1_000_000, { huge: { type: 'boolean', default: false } })
const huge = process.argv.includes('--huge')
const memorySizes = [...new Set([Math.max(1, Math.round(largest / 100)), Math.max(1, Math.round(largest / 10)), largest])]
const sizes = huge ? [...memorySizes, largest * 10] : memorySizes

const sandbox = benchSandbox('log-size')
const { cwd, work } = sandbox
const homes = new Map(sizes.map((n) => [n, join(work, `wal-${n}`)]))
const consumeOut = join(work, 'consumed.ndjson')
writeFileSync(join(cwd, '.walrc.json'), JSON.stringify({ namespaces: { [NAMESPACE]: { partitions: 8, targets: { out: { type: 'file', path: consumeOut } } }, [FILL]: { partitions: 8 } } }))

async function run(args, home, options = {}) {
  const result = await spawnTimed([BIN, ...args], { cwd, env: sandbox.env(home), stdout: 'ignore', ...options })
  if (result.code !== 0) throw new Error(`wal ${args.join(' ')} exited ${result.code}:\n${result.stderr}`)
  return result
}

const commands = [
  { name: 'tail --from 1s', args: ['tail', '-n', NAMESPACE, '--from', '1s'] },
  { name: 'tail --from -10', args: ['tail', '-n', NAMESPACE, '--from', '-10'] },
  { name: 'ns show', args: ['ns', 'show', NAMESPACE] },
  { name: 'produce -p', args: ['produce', '-n', NAMESPACE, '-k', 'k', '-p', '{"a":1}'] },
]
const cpu = new Map(commands.map((c) => [c.name, new Map(sizes.map((n) => [n, []]))]))
/** Peak resident memory (MB) of the whole-log commands, per log size. */
const memory = new Map(['tail --json | …', 'consume --until-idle', 'produce (stdin)'].map((name) => [name, new Map()]))

await runOrExit(async () => {
  for (const n of sizes) {
    const dir = join(homes.get(n), 'embedded')
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    chmodSync(homes.get(n), 0o700)
    copyFileSync(await cachedLog(n), join(dir, `${NAMESPACE}.db`))
    chmodSync(join(dir, `${NAMESPACE}.db`), 0o600)
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const command of commands) for (const n of sizes) cpu.get(command.name).get(n).push((await run(command.args, homes.get(n))).cpuMs)
  }
  // When V8 collects its old generation varies from run to run: the median of MEMORY_ROUNDS runs.
  for (const n of memorySizes) {
    const home = homes.get(n)
    const input = join(work, 'input.ndjson')
    writeInput(input, n)
    const peaks = { tail: [], consume: [], produce: [] }
    for (let round = 0; round < MEMORY_ROUNDS; round++) {
      peaks.tail.push((await run(['tail', '-n', NAMESPACE, '--json'], home, { stdout: 'drain' })).maxRssKb / 1024)
      // From the start of the log each time: the target's offsets go back to the beginning.
      await run(['offsets', 'reset', '-n', NAMESPACE, '--target', 'out', '--to-beginning', '--execute'], home)
      peaks.consume.push((await run(['consume', '-n', NAMESPACE, '--until-idle'], home)).maxRssKb / 1024)
      rmSync(consumeOut, { force: true })
      rmSync(join(home, 'embedded', `${FILL}.db`), { force: true })
      for (const suffix of ['-wal', '-shm']) rmSync(join(home, 'embedded', `${FILL}.db${suffix}`), { force: true })
      peaks.produce.push((await run(['produce', '-n', FILL], home, { inputFile: input })).maxRssKb / 1024)
      const filled = countRecords(join(home, 'embedded', `${FILL}.db`))
      if (filled !== n) throw new Error(`wal produce of ${n} lines exited 0 but the log holds ${filled} records`)
    }
    rmSync(input)
    memory.get('tail --json | …').set(n, median(peaks.tail))
    memory.get('consume --until-idle').set(n, median(peaks.consume))
    memory.get('produce (stdin)').set(n, median(peaks.produce))
  }
}, sandbox.cleanup)

const smallest = sizes[0]
const lines = []
for (const command of commands) {
  const medians = sizes.map((n) => median(cpu.get(command.name).get(n)))
  lines.push({ name: command.name, figures: medians.map(round1), ratio: Number((medians.at(-1) / medians[0]).toFixed(2)) })
  console.log(`${command.name.padEnd(21)} CPU ${sizes.map((n, i) => `${countLabel(n)}: ${medians[i].toFixed(0)} ms`).join(', ')} (${countLabel(sizes.at(-1))}/${countLabel(smallest)}: ${(medians.at(-1) / medians[0]).toFixed(2)}x)`)
}
const peaks = {}
for (const [name, bySize] of memory) {
  const mb = memorySizes.map((n) => bySize.get(n))
  peaks[name] = mb.map(round1)
  console.log(`${name.padEnd(21)} peak memory ${memorySizes.map((n, i) => `${countLabel(n)}: ${mb[i].toFixed(0)} MB`).join(', ')} (${(mb.at(-1) / mb[0]).toFixed(2)}x)`)
}
console.log(
  JSON.stringify({
    bench: 'log-size',
    sizes,
    rounds: ROUNDS,
    cpuMedianMs: Object.fromEntries(lines.map((l) => [l.name, l.figures])),
    ratios: Object.fromEntries(lines.map((l) => [l.name, l.ratio])),
    memorySizes,
    memoryRounds: MEMORY_ROUNDS,
    peakRssMbMedian: peaks,
    node: process.version,
  }),
)
