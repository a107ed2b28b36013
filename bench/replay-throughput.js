// DLQ replay throughput on the embedded log into the kv target, against the figure it must beat: SQS's
// redrive tops out at 500 messages/s, and the aim here is ten times that.
//
//   npm run build && node bench/replay-throughput.js [--records N]
//
// Set-up (not timed): N valid put operations, addressed to an HTTP target that answers 400, so the
// consumer dead-letters them all (fatal). Timed: `wal dlq replay --to-target store` (the entries move
// back into the log, addressed to the kv target) and then `wal consume --target store --until-idle`
// (they are applied). Reports both rates; exits 1 only if wal fails or the counts are wrong.
import { createServer } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'

import { BIN, benchSandbox, countLabel, fmt, recordsOption, runOrExit, spawnTimed } from './lib.js'

const AIM_PER_SEC = 5000
const records = recordsOption(20000)
const sandbox = benchSandbox('replay')
const walHome = join(sandbox.work, 'wal-home')
const env = sandbox.env(walHome)
const server = createServer((request, response) => {
  request.resume()
  request.on('end', () => {
    response.writeHead(400)
    response.end('rejected by the bench')
  })
})

async function wal(args, inputFile) {
  const result = await spawnTimed([BIN, ...args], { env, cwd: sandbox.cwd, inputFile })
  if (result.code !== 0) throw new Error(`wal ${args.join(' ')} exited ${result.code}:\n${result.stderr}`)
  return result
}

/** Rows of a table in one of wal's files: `embedded/orders.db` (the log and its DLQ) or `kv/orders.db`. */
function count(file, table) {
  const db = new DatabaseSync(join(walHome, file), { readOnly: true })
  try {
    return db.prepare(`SELECT count(*) AS n FROM ${table}`).get().n
  } finally {
    db.close()
  }
}

await runOrExit(async () => {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${server.address().port}/`
  writeFileSync(
    join(sandbox.cwd, '.walrc.json'),
    JSON.stringify({ namespaces: { orders: { partitions: 8, targets: { api: { type: 'http', url, retry: { maxAttempts: 1 } }, store: { type: 'kv' } } } } }),
  )
  const input = join(sandbox.work, 'input.ndjson')
  let ndjson = ''
  for (let i = 0; i < records; i++) {
    ndjson += `${JSON.stringify({ key: `user-${i % 5000}`, target: 'api', payload: { op: 'put', table: 'users', key: { id: i }, item: { id: i, name: `user ${i}`, note: 'x'.repeat(120) } } })}\n`
  }
  writeFileSync(input, ndjson)
  await wal(['produce', '-n', 'orders'], input)
  await wal(['consume', '-n', 'orders', '--target', 'api', '--until-idle', '--concurrency', '64'])
  const dead = count('embedded/orders.db', 'dlq')
  if (dead !== records) throw new Error(`set-up: expected ${records} dead letters, found ${dead}`)

  const replay = await wal(['dlq', 'replay', '-n', 'orders', '--to-target', 'store', '--json'])
  const plan = JSON.parse(replay.stdout)
  if (plan.replayed !== records || count('embedded/orders.db', 'dlq') !== 0) throw new Error(`replay moved ${plan.replayed} of ${records}`)
  const apply = await wal(['consume', '-n', 'orders', '--target', 'store', '--until-idle', '--concurrency', '64', '--json'])
  const applied = JSON.parse(apply.stdout).targets[0].applied
  const stored = count('kv/orders.db', 'items')
  if (applied !== records || stored !== records) throw new Error(`applied ${applied}, stored ${stored}, expected ${records}`)

  const replayPerSec = (records / replay.ms) * 1000
  const endToEndPerSec = (records / (replay.ms + apply.ms)) * 1000
  console.log(
    `dlq replay ${countLabel(records)} into kv: replay ${fmt(replayPerSec)}/s; replay + apply ${fmt(endToEndPerSec)}/s (aim >= ${fmt(AIM_PER_SEC)}/s; SQS redrive: 500/s)`,
  )
  console.log(
    JSON.stringify({
      bench: 'replay-throughput',
      records,
      replayMs: Math.round(replay.ms),
      applyMs: Math.round(apply.ms),
      replayPerSec: Math.round(replayPerSec),
      endToEndPerSec: Math.round(endToEndPerSec),
      aimPerSec: AIM_PER_SEC,
      node: process.version,
    }),
  )
}, async () => {
  server.close()
  sandbox.cleanup()
})
