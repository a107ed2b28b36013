// Bundles the CLI into dist/ with esbuild: a few files to load instead of hundreds of modules keeps
// `wal produce` start-up close to Node's own. Modules imported dynamically become their own chunks,
// so a backend's or target's code (and its SDK, kept external) loads only when a namespace uses it.
import { build } from 'esbuild'
import { isBuiltin } from 'node:module'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'

// oclif sorts the manifest's command ids with localeCompare on every start, and the first localeCompare
// in a process builds an ICU collator: about 6 ms, a tenth of a `wal produce`. wal's ids are lowercase
// ASCII words, ':' and '-', which sort the same by code unit; so the bundle compares them that way. The
// build fails if the line is not found (an oclif upgrade), rather than silently losing the change.
const OCLIF_SORT = '.sort((a, b) => a.id.localeCompare(b.id))'

// oclif's modules require at load time everything they might use (help rendering, plugin globbing,
// spinners, child_process, readline…), and evaluating all of that is most of a command's start-up. Each
// top-level `const x_1 = require("…")` whose binding is only ever read as `x_1.name` (as TypeScript emits
// them) becomes a stand-in that requires the module on first use: the same code runs, only what a command
// path touches is loaded. A binding used any other way is left as it was.
const LAZY_REQUIRE = /^const (\w+) = ((?:__importDefault|__importStar)\(require\((["'])[^"']+\3\)\)|require\((["'])[^"']+\4\));$/gm
const LAZY_HELPER =
  'function __walLazy(load) { let m; const get = () => (m === undefined ? (m = load()) : m); return new Proxy({}, {' +
  ' get: (_, k) => get()[k], set: (_, k, v) => { get()[k] = v; return true }, has: (_, k) => k in get(),' +
  ' ownKeys: () => Reflect.ownKeys(get()), getPrototypeOf: () => Reflect.getPrototypeOf(get()),' +
  ' getOwnPropertyDescriptor: (_, k) => { const d = Reflect.getOwnPropertyDescriptor(get(), k); return d && { ...d, configurable: true } } }) }\n'
let lazified = 0
function lazyRequires(text) {
  let changed = false
  const out = text.replace(LAZY_REQUIRE, (line, name, expr) => {
    // Every other mention of the binding must be a property read (`name.x`, `name[x]`).
    const mentions = text.match(new RegExp(`(?<![\\w$.])${name}(?![\\w$])(?!\\s*[.[])`, 'g')) ?? []
    if (mentions.length !== 1) return line
    changed = true
    lazified++
    return `const ${name} = __walLazy(() => ${expr});`
  })
  return changed ? `${LAZY_HELPER}${out}` : text
}

const oclifLoad = {
  name: 'oclif-load',
  setup(build) {
    build.onStart(() => {
      lazified = 0
    })
    build.onLoad({ filter: /@oclif[\\/]core[\\/]lib[\\/].*\.js$/ }, async (args) => {
      let text = await readFile(args.path, 'utf8')
      if (/[\\/]config[\\/]plugin\.js$/.test(args.path)) {
        if (!text.includes(OCLIF_SORT)) throw new Error(`${args.path}: the command sort to replace is not there any more; update scripts/build.mjs`)
        text = text.replace(OCLIF_SORT, '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))')
      }
      // Whether this is WSL, asked on every start: from the bundle itself rather than through a separate
      // chunk's dynamic import (see src/lib/cli/wsl-utils-shim.ts).
      if (/[\\/]util[\\/]os\.js$/.test(args.path)) {
        const WSL = "(await import('wsl-utils')).isWsl"
        if (!text.includes(WSL)) throw new Error(`${args.path}: the WSL check to replace is not there any more; update scripts/build.mjs`)
        text = text.replace(WSL, "require('wsl-utils').isWsl")
      }
      return { contents: lazyRequires(text), loader: 'js' }
    })
    build.onEnd(() => {
      // A handful means the pattern no longer matches oclif's output (an upgrade): fail, do not lose it.
      if (lazified < 100) throw new Error(`only ${lazified} of oclif's requires made lazy; update scripts/build.mjs`)
    })
  },
}

// An ESM import of a Node built-in goes through an ES module facade that reads every export at once:
// for node:fs that means loading its streams and fs/promises (with readline) on every start. Static
// imports in the bundle take the built-in itself (process.getBuiltinModule) from a small module that
// exports its plain values by name; its getters (fs.promises, fs.ReadStream…) are not read, and importing
// one by name fails the build (use the default export: fs.promises), as does reading one through `* as`.
const builtinsAsIs = {
  name: 'builtins-as-is',
  setup(build) {
    build.onResolve({ filter: /^[a-z0-9_:/]+$/ }, (args) =>
      args.kind === 'import-statement' && isBuiltin(args.path) ? { path: args.path.startsWith('node:') ? args.path : `node:${args.path}`, namespace: 'builtin' } : undefined,
    )
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => {
      const builtin = process.getBuiltinModule(args.path)
      const names = Object.getOwnPropertyNames(builtin).filter((name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== 'default' && 'value' in Object.getOwnPropertyDescriptor(builtin, name))
      const id = JSON.stringify(args.path)
      return { contents: `const m = process.getBuiltinModule(${id})\nexport default m\n${names.map((name) => `export const ${name} = m.${name}`).join('\n')}\n`, loader: 'js' }
    })
    build.onEnd((result) => {
      const undefinedImport = result.warnings.find((warning) => /will always be undefined/.test(warning.text))
      if (undefinedImport) throw new Error(`${undefinedImport.location?.file}:${undefinedImport.location?.line}: ${undefinedImport.text}`)
    })
  },
}

const common = {
  outdir: 'dist',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  sourcemap: 'linked',
  minify: true,
  keepNames: true,
  // Heavy SDKs stay in node_modules and load lazily from their adapter.
  // ink and React too: they load only on a terminal's live views (ink is ESM with top-level await and
  // optional devtools imports, which are simplest left to Node).
  // The Kafka codecs too: they load with kafkajs (zstd reads its WebAssembly file from its package).
  external: ['kafkajs', 'snappyjs', 'lz4js', '@bokuweb/zstd-wasm', '@aws-sdk/*', 'cassandra-driver', 'typescript', 'pino', 'prom-client', 'ink', 'react', 'react/*'],
  jsx: 'automatic',
  // Bundled CommonJS (oclif) calls require(); give ESM output one. Made on first use: every file of the
  // bundle gets this line, and most never call it (createRequire costs about 0.05 ms a file at start-up).
  banner: {
    js: "let __walRequire; const require = new Proxy(function require() {}, { apply: (_, self, args) => (__walRequire ??= process.getBuiltinModule('node:module').createRequire(import.meta.url)).apply(self, args), get: (_, key) => (__walRequire ??= process.getBuiltinModule('node:module').createRequire(import.meta.url))[key] });",
  },
  logLevel: 'warning',
}

await rm(new URL('../dist', import.meta.url), { recursive: true, force: true })
// The manifest is rewritten after the bundle (oclif manifest); until then the CLI must not use a stale one.
await rm(new URL('../oclif.manifest.json', import.meta.url), { force: true })
const cli = {
  ...common,
  splitting: true,
  // Lighter stand-ins for two packages oclif loads on every start: see the files for why.
  alias: { 'wsl-utils': './src/lib/cli/wsl-utils-shim.ts', debug: './src/lib/cli/debug-shim.ts' },
  plugins: [oclifLoad, builtinsAsIs],
}
await build({ ...cli, entryPoints: { index: 'src/index.ts' } })
// `wal produce` on its own (src/produce-main.ts, chosen by bin/run.js): the same code in a few files. Its
// chunks sit beside the full table's; a name both builds write is the same content (names are hashes).
// The command imports its library on use (so that `wal produce --help` stays light in the full table);
// here that library is the point, so the import is made static and it lands in the same file.
const PRODUCE_LIB = "await import('../lib/produce/produce.js')"
const produceLibStatic = {
  name: 'produce-lib-static',
  setup(build) {
    build.onLoad({ filter: /[\\/]src[\\/]commands[\\/]produce\.ts$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8')
      if (!text.includes(PRODUCE_LIB)) throw new Error(`${args.path}: the import to make static is not there any more; update scripts/build.mjs`)
      return { contents: `import * as __walProduceLib from '../lib/produce/produce.js'\n${text.replace(PRODUCE_LIB, '__walProduceLib')}`, loader: 'ts' }
    })
  },
}
await build({ ...cli, entryPoints: { 'produce-main': 'src/produce-main.ts' }, plugins: [...cli.plugins, produceLibStatic] })
// The embedded log's writer thread, self-contained: a Worker loads it by URL, and sharing chunks with
// the CLI would only add files to every start.
await build({ ...common, entryPoints: { 'embedded-writer': 'src/lib/log/embedded/writer-thread.ts' }, splitting: false, plugins: [builtinsAsIs] })

// Node reads a module's source as ASCII (Latin-1) quickly, but one character past that makes it decode
// the whole file as UTF-8 into a two-byte string: a few milliseconds for the 400 kB of produce's bundle,
// on every start. esbuild escapes such characters in strings and identifiers, but not inside a regular
// expression literal that a package ships already minified (ansis has a raw U+009B). \uXXXX means the
// same character there, as in a string or a comment; astral characters become their surrogate pair,
// which is what they are outside a /u expression and what \uD8xx\uDCxx means inside one.
for (const name of await readdir(new URL('../dist', import.meta.url))) {
  if (!name.endsWith('.js')) continue
  const file = new URL(`../dist/${name}`, import.meta.url)
  const text = await readFile(file, 'utf8')
  // eslint-disable-next-line no-control-regex -- the point is to find what is not ASCII
  if (!/[^\x00-\x7f]/.test(text)) continue
  // eslint-disable-next-line no-control-regex
  await writeFile(file, text.replace(/[^\x00-\x7f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`))
}
