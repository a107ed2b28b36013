// The entry of the single executable (dist/wal, built by scripts/build-binary.mjs). The executable holds
// wal's bundle and the packages it loads lazily (Kafka, SQS, Cassandra clients, the live views) as one
// archive. The first run of a given build unpacks it into a private cache directory (0700), later runs
// only check that it is there; then wal starts from it as bin/run.js does, with the Node inside.
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const sea = require('node:sea')

function fail(message, hints) {
  process.stderr.write(`wal: ${message}\n${hints.map((h) => `  hint: ${h}\n`).join('')}`)
  process.exit(1)
}

/** A directory of ours: exists, belongs to this user, and no one else may write to it. */
function ours(dir) {
  try {
    const stat = fs.lstatSync(dir)
    const uid = process.getuid ? process.getuid() : stat.uid
    return stat.isDirectory() && stat.uid === uid && (stat.mode & 0o022) === 0
  } catch {
    return false
  }
}

function cacheRoots() {
  const roots = []
  if (process.env.WAL_BINARY_CACHE) roots.push(process.env.WAL_BINARY_CACHE)
  const home = os.homedir()
  roots.push(process.env.XDG_CACHE_HOME ? path.join(process.env.XDG_CACHE_HOME, 'wal') : path.join(home, '.cache', 'wal'))
  roots.push(path.join(os.tmpdir(), `wal-${process.getuid ? process.getuid() : 'user'}`))
  return roots
}

/** Leftovers of unpacks that were killed midway (their process is gone). */
function removeStalePartials(target) {
  const dir = path.dirname(target)
  const prefix = `${path.basename(target)}.partial-`
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(name.slice(prefix.length))
    let alive = false
    try {
      process.kill(pid, 0)
      alive = true
    } catch (error) {
      alive = error.code === 'EPERM'
    }
    if (!alive) fs.rmSync(path.join(dir, name), { recursive: true, force: true })
  }
}

function unpack(target) {
  removeStalePartials(target)
  const index = JSON.parse(sea.getAsset('index.json', 'utf8'))
  const archive = Buffer.from(sea.getAsset('archive.bin'))
  const partial = `${target}.partial-${process.pid}`
  fs.rmSync(partial, { recursive: true, force: true })
  fs.mkdirSync(partial, { recursive: true, mode: 0o700 })
  for (const file of index.files) {
    const to = path.join(partial, file.path)
    fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o700 })
    fs.writeFileSync(to, archive.subarray(file.offset, file.offset + file.size), { mode: 0o600 })
  }
  fs.writeFileSync(path.join(partial, '.complete'), index.id)
  try {
    fs.renameSync(partial, target)
  } catch (error) {
    // Another wal unpacked the same build at the same time: use theirs.
    fs.rmSync(partial, { recursive: true, force: true })
    if (!fs.existsSync(path.join(target, '.complete'))) throw error
  }
}

function prepare() {
  const id = sea.getAsset('id.txt', 'utf8').trim()
  const problems = []
  for (const root of cacheRoots()) {
    const target = path.join(root, id)
    try {
      if (ours(target) && fs.readFileSync(path.join(target, '.complete'), 'utf8') === id) return target
      fs.mkdirSync(root, { recursive: true, mode: 0o700 })
      if (!ours(root)) {
        problems.push(`${root}: not a directory of this user's that only they may write`)
        continue
      }
      if (fs.existsSync(target)) fs.rmSync(target, { recursive: true, force: true })
      unpack(target)
      return target
    } catch (error) {
      problems.push(`${root}: ${error.code || error.message}`)
    }
  }
  fail(`cannot unpack wal's files (needed once per version): ${problems.join('; ')}`, [
    'make ~/.cache writable, or set WAL_BINARY_CACHE to a directory of yours',
  ])
}

const root = prepare()
globalThis.__walSea = true
// The same compile cache as bin/run.js: scripts call `wal produce` in loops.
require('node:module').enableCompileCache?.(path.join(root, '.compile-cache'))
// `wal produce` (but not its help) starts from its own bundle, as bin/run.js does: see src/produce-main.ts.
const args = process.argv.slice(2)
const own = args[0] === 'produce' && !args.includes('--help') && !args.includes('-h')
const entry = path.join(root, 'dist', own ? 'produce-main.js' : 'index.js')
const { pathToFileURL } = require('node:url')
import(pathToFileURL(entry).href)
  .then((wal) => wal.run(pathToFileURL(path.join(root, 'bin', 'run.js')).href))
  .catch((error) => {
    if (error && error.oclif && typeof error.oclif.exit === 'number') process.exit(error.oclif.exit)
    fail(`could not start: ${error && error.stack ? error.stack : error}`, ['set WAL_DEBUG=1 and report it, with the output of: wal version'])
  })
