// Transactions vs plain lines: the same mutations (~200-byte puts) produced and consumed (embedded log
// → kv target) once as plain NDJSON lines and once as transactions of 10 parts ({"txn":ID,…} lines and
// a {"txn":ID,"commit":true} marker each), alternating runs in one process. Reports transactions/s, the
// mutations/s of both, and the wall and CPU (user+sys of the wal processes) ratios, produce and consume
// separately.
//
//   npm run build && node bench/transactions.js [--records N]
//
// Reports; does not gate. Exits 1 when wal fails or the kv store does not hold what it should.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DatabaseSync } from 'node:sqlite'

import { BIN, benchSandbox, countLabel, fmt, median, payloadFor, recordsOption, runOrExit } from './lib.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const PARTS = 10
const records = recordsOption(20_000)
const transactions = Math.floor(records / PARTS)
const sandbox = benchSandbox('transactions')
const { work, cwd } = sandbox

// Every mutation writes its own row, so both sides must leave `records` rows in the kv store.
const line = (i) => {
  const payload = JSON.parse(payloadFor(i))
  return { key: `user-${i % 5000}`, payload: { op: 'put', table: 'orders', key: { id: i }, item: payload.item } }
}
let plain = ''
let txns = ''
for (let t = 0; t < transactions; t++) {
  for (let p = 0; p < PARTS; p++) {
    const i = t * PARTS + p
    plain += `${JSON.stringify(line(i))}\n`
    txns += `${JSON.stringify({ txn: `t-${t}`, ...line(i) })}\n`
  }
  txns += `{"txn":"t-${t}","commit":true}\n`
}
const inputs = { plain: join(work, 'plain.ndjson'), txn: join(work, 'txn.ndjson') }
writeFileSync(inputs.plain, plain)
writeFileSync(inputs.txn, txns)

/** Runs `node bin/run.js ARGS < input` under bash's `time`: wall ms (spawn to exit) and CPU ms (user + sys). */
function timed(args, env, input) {
  return new Promise((resolve, reject) => {
    const command = `TIMEFORMAT='%U %S'; time "${process.execPath}" "${BIN}" ${args.join(' ')} < "${input}" > /dev/null 2>"${join(work, 'stderr')}"`
    const started = performance.now()
    const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const ms = performance.now() - started
      if (code !== 0) return reject(new Error(`wal ${args.join(' ')} exited ${code}`))
      const [user, sys] = stderr.trim().split('\n').at(-1).split(' ').map(Number)
      resolve({ ms, cpuMs: (user + sys) * 1000 })
    })
  })
}

function kvRows(walHome) {
  const db = new DatabaseSync(join(walHome, 'kv', 'bench.db'), { readOnly: true })
  try {
    return db.prepare('SELECT count(*) AS n FROM items').get().n
  } finally {
    db.close()
  }
}

const results = { plain: { produce: [], consume: [] }, txn: { produce: [], consume: [] } }

await runOrExit(
  async () => {
    for (let run = 0; run < RUNS; run++) {
      for (const side of run % 2 === 0 ? ['plain', 'txn'] : ['txn', 'plain']) {
        const walHome = join(work, `wal-${side}-${run}`)
        const env = sandbox.env(walHome)
        results[side].produce.push(await timed(['produce', '-n', 'bench'], env, inputs[side]))
        results[side].consume.push(await timed(['consume', '-n', 'bench', '--until-idle'], env, '/dev/null'))
        const rows = kvRows(walHome)
        if (rows !== records - (records % PARTS)) throw new Error(`${side}: the kv store holds ${rows} rows, not ${records - (records % PARTS)}`)
      }
    }
    const med = (side, step, what) => median(results[side][step].map((r) => r[what]))
    const total = (side, what) => med(side, 'produce', what) + med(side, 'consume', what)
    const mutations = transactions * PARTS
    console.log(`transactions of ${PARTS} parts vs the same ${countLabel(mutations)} mutations as plain lines (embedded → kv, median of ${RUNS} runs)`)
    for (const step of ['produce', 'consume']) {
      console.log(
        `  ${step}: plain ${fmt((mutations / med('plain', step, 'ms')) * 1000)} mutations/s; transactions ${fmt((transactions / med('txn', step, 'ms')) * 1000)} txn/s ` +
          `(${fmt((mutations / med('txn', step, 'ms')) * 1000)} mutations/s); wall ×${(med('txn', step, 'ms') / med('plain', step, 'ms')).toFixed(2)}, CPU ×${(med('txn', step, 'cpuMs') / med('plain', step, 'cpuMs')).toFixed(2)}`,
      )
    }
    console.log(`  end to end: ${fmt((transactions / total('txn', 'ms')) * 1000)} txn/s vs ${fmt((mutations / total('plain', 'ms')) * 1000)} plain mutations/s; wall ×${(total('txn', 'ms') / total('plain', 'ms')).toFixed(2)}, CPU ×${(total('txn', 'cpuMs') / total('plain', 'cpuMs')).toFixed(2)}`)
    console.log(JSON.stringify({ bench: 'transactions', parts: PARTS, mutations, transactions, runs: RUNS, results }))
  },
  () => sandbox.cleanup(),
)
