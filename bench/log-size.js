// What a log's size costs the commands that should not depend on it: `tail --from TIME` (nothing that
// recent: it only finds where to start), `ns show`, a one-mutation `wal produce -p`, and the peak memory
// of a full `wal tail --json`, on embedded logs of 10k, 100k and 1M records. Reported as CPU time
// (medians of interleaved rounds) and as ratios to the smallest log: flat means about 1x.
//
//   npm run build && node bench/log-size.js [--records N]   (N: the largest log; default 1,000,000)
//
// Reports; does not gate on the ratios. Exits 1 only when a command fails.
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import { BIN, benchSandbox, countLabel, countRecords, median, recordsOption, round1, runOrExit, spawnTimed, writeInput } from './lib.js'

const ROUNDS = 5
const NAMESPACE = 'bench'
const largest = recordsOption(1_000_000)
const sizes = [...new Set([Math.max(1, Math.round(largest / 100)), Math.max(1, Math.round(largest / 10)), largest])]

const sandbox = benchSandbox('log-size')
const { cwd, work } = sandbox
const homes = new Map(sizes.map((n) => [n, join(work, `wal-${n}`)]))

async function run(args, home, options = {}) {
  const result = await spawnTimed([BIN, ...args], { cwd, env: sandbox.env(home), stdout: 'ignore', ...options })
  if (result.code !== 0) throw new Error(`wal ${args.join(' ')} exited ${result.code}:\n${result.stderr}`)
  return result
}

const commands = [
  { name: 'tail --from 1s', args: ['tail', '-n', NAMESPACE, '--from', '1s'] },
  { name: 'ns show', args: ['ns', 'show', NAMESPACE] },
  { name: 'produce -p', args: ['produce', '-n', NAMESPACE, '-k', 'k', '-p', '{"a":1}'] },
]
const cpu = new Map(commands.map((c) => [c.name, new Map(sizes.map((n) => [n, []]))]))
const tailRssKb = new Map()

await runOrExit(async () => {
  const inputPath = join(work, 'input.ndjson')
  writeInput(inputPath, largest)
  for (const n of sizes) {
    const input = n === largest ? inputPath : join(work, `input-${n}.ndjson`)
    if (n !== largest) writeInput(input, n)
    await run(['produce', '-n', NAMESPACE], homes.get(n), { inputFile: input })
    const count = countRecords(join(homes.get(n), 'embedded', `${NAMESPACE}.db`))
    if (count !== n) throw new Error(`setup: the ${countLabel(n)} log holds ${count} records`)
  }
  // Nothing in the logs is from the last second any more.
  await sleep(1100)
  for (let round = 0; round < ROUNDS; round++) {
    for (const command of commands) for (const n of sizes) cpu.get(command.name).get(n).push((await run(command.args, homes.get(n))).cpuMs)
  }
  for (const n of sizes) tailRssKb.set(n, (await run(['tail', '-n', NAMESPACE, '--json'], homes.get(n))).maxRssKb)
}, sandbox.cleanup)

const smallest = sizes[0]
const lines = []
for (const command of commands) {
  const medians = sizes.map((n) => median(cpu.get(command.name).get(n)))
  lines.push({ name: command.name, figures: medians.map(round1), ratio: Number((medians.at(-1) / medians[0]).toFixed(2)) })
  console.log(`${command.name.padEnd(16)} CPU ${sizes.map((n, i) => `${countLabel(n)}: ${medians[i].toFixed(0)} ms`).join(', ')} (${countLabel(largest)}/${countLabel(smallest)}: ${(medians.at(-1) / medians[0]).toFixed(2)}x)`)
}
const rss = sizes.map((n) => tailRssKb.get(n) / 1024)
console.log(`${'tail --json'.padEnd(16)} peak memory ${sizes.map((n, i) => `${countLabel(n)}: ${rss[i].toFixed(0)} MB`).join(', ')} (${(rss.at(-1) / rss[0]).toFixed(2)}x)`)
console.log(
  JSON.stringify({
    bench: 'log-size',
    sizes,
    rounds: ROUNDS,
    cpuMedianMs: Object.fromEntries(lines.map((l) => [l.name, l.figures])),
    ratios: Object.fromEntries(lines.map((l) => [l.name, l.ratio])),
    tailPeakRssMb: rss.map(round1),
    node: process.version,
  }),
)
