#!/usr/bin/env node
// Real Kafka, Cassandra, ElasticMQ (SQS) and Toxiproxy on 127.0.0.1 for the test suite, without Docker:
// fetched from Maven Central and the Go module proxy, cached in ~/.cache/wal-services.
//
//   node scripts/services.js up [NAME…]      start what is not running (idempotent)
//   node scripts/services.js down [NAME…]    stop what this script started
//   node scripts/services.js status          which are up, where
//   node scripts/services.js logs NAME [-f]  a server's log
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'

import { down, status, up } from './services/index.js'
import { ServiceError, logPath } from './services/lib.js'

const [command, ...rest] = process.argv.slice(2)
try {
  switch (command) {
    case 'up':
      await up(rest)
      break
    case 'down':
      await down(rest)
      break
    case 'status':
      for (const row of await status(rest)) {
        console.log(`${row.name.padEnd(10)} ${row.ready ? 'up  ' : 'down'}  ${row.pid ? `pid ${row.pid}` : row.external ? 'external' : '-'}  ${row.where}`)
      }
      break
    case 'logs': {
      const [name, flag] = rest
      if (!name) throw new ServiceError('usage: services logs NAME [-f]')
      const path = logPath(name)
      if (flag === '-f') spawn('tail', ['-n', '100', '-f', path], { stdio: 'inherit' })
      else if (existsSync(path)) process.stdout.write(readFileSync(path))
      else throw new ServiceError(`no log for ${name} at ${path}`)
      break
    }
    default:
      throw new ServiceError('usage: services up|down|status|logs [NAME…]')
  }
} catch (error) {
  if (!(error instanceof ServiceError)) throw error
  process.stderr.write(`services: ${error.message}\n`)
  process.exit(1)
}
