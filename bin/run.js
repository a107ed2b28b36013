#!/usr/bin/env node
// Checked first, in syntax that any Node can parse, so an old Node gets a message and not a stack trace.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `wal needs Node.js 22.13 or newer (it uses the built-in node:sqlite); this is Node.js ${process.version}.\n` +
      '  hint: install Node.js 24 LTS (e.g. nvm install 24), or run wal through this project\'s npm scripts or npx, which use the Node it pins\n',
  )
  process.exit(1)
}
// The built-ins themselves, not their ES module facades (which would load all of node:fs's streams).
const { arch, homedir, platform, release } = process.getBuiltinModule('node:os')
const { existsSync, lstatSync, mkdirSync, readFileSync } = process.getBuiltinModule('node:fs')

// `wal --version` answers without loading the CLI: the same line oclif prints (name/version platform-arch
// node-version), read from package.json. WSL (which oclif reports as "wsl", seen in the kernel's release
// or /proc/version as is-wsl does) and OCLIF_NEXT_VERSION go the long way.
function maybeWsl() {
  if (platform() !== 'linux') return false
  if (release().toLowerCase().includes('microsoft')) return true
  try {
    return readFileSync('/proc/version', 'utf8').toLowerCase().includes('microsoft')
  } catch {
    return false
  }
}
if (process.argv.length === 3 && process.argv[2] === '--version' && !process.env.OCLIF_NEXT_VERSION && !maybeWsl()) {
  const pjson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  const cpu = arch() === 'ia32' ? 'x86' : arch()
  process.stdout.write(`${pjson.name}/${pjson.version} ${platform()}-${cpu} node-${process.version}\n`)
  process.exit(0)
}

// Caches compiled code between runs (scripts call `wal produce` in loops, so start-up time matters), in a
// directory of this user's alone: V8 checks a cache entry against little more than the source's length,
// so a cache another user can write to could run their code as ours. Not used when that cannot be had.
function compileCacheDir() {
  if (process.env.NODE_COMPILE_CACHE || process.env.NODE_DISABLE_COMPILE_CACHE) return null
  const base =
    process.platform === 'win32' ? process.env.LOCALAPPDATA : process.env.XDG_CACHE_HOME?.startsWith('/') ? process.env.XDG_CACHE_HOME : `${homedir()}/.cache`
  if (!base) return null
  const dir = `${base}/wal/compile-cache`
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    // Both it and its parent: a parent someone else owns or can write to lets them swap the directory.
    const uid = process.getuid?.()
    const ours = (path, mask) => {
      const stat = lstatSync(path)
      return stat.isDirectory() && (uid === undefined || stat.uid === uid) && (process.platform === 'win32' || (stat.mode & mask) === 0)
    }
    return ours(dir, 0o077) && ours(`${base}/wal`, 0o022) ? dir : null
  } catch {
    return null
  }
}
const cacheDir = compileCacheDir()
if (cacheDir) {
  process.getBuiltinModule('node:module').enableCompileCache?.(cacheDir)
}
const bundle = new URL('../dist/index.js', import.meta.url)
if (!existsSync(bundle)) {
  process.stderr.write('wal: this checkout is not built yet (dist/index.js is missing)\n  hint: run npm ci (or npm run build) in it first\n')
  process.exit(1)
}
// `wal produce`, which scripts run once per mutation, has a bundle of its own: the same command in a few
// files, run without loading every command's manifest (see src/produce-main.ts). Its help goes the usual
// way (the same output, without loading what writing needs).
const produceBundle = new URL('../dist/produce-main.js', import.meta.url)
const own = process.argv[2] === 'produce' && !process.argv.includes('--help') && !process.argv.includes('-h') && existsSync(produceBundle)
const { run } = await import(own ? produceBundle.href : bundle.href)
await run(import.meta.url)
