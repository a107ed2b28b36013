// Bundles the CLI into dist/ with esbuild: a few files to load instead of hundreds of modules keeps
// `wal produce` start-up close to Node's own. Modules imported dynamically become their own chunks,
// so a backend's or target's code (and its SDK, kept external) loads only when a namespace uses it.
import { build } from 'esbuild'
import { readFile, rm } from 'node:fs/promises'

// oclif sorts the manifest's command ids with localeCompare on every start, and the first localeCompare
// in a process builds an ICU collator: about 6 ms, a tenth of a `wal produce`. wal's ids are lowercase
// ASCII words, ':' and '-', which sort the same by code unit; so the bundle compares them that way. The
// build fails if the line is not found (an oclif upgrade), rather than silently losing the change.
const OCLIF_SORT = '.sort((a, b) => a.id.localeCompare(b.id))'
const oclifPlainSort = {
  name: 'oclif-plain-sort',
  setup(build) {
    build.onLoad({ filter: /@oclif[\\/]core[\\/]lib[\\/]config[\\/]plugin\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8')
      if (!text.includes(OCLIF_SORT)) throw new Error(`${args.path}: the command sort to replace is not there any more; update scripts/build.mjs`)
      return { contents: text.replace(OCLIF_SORT, '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))'), loader: 'js' }
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
  // Bundled CommonJS (oclif) calls require(); give ESM output one.
  banner: { js: "import { createRequire as __walCreateRequire } from 'node:module'; const require = __walCreateRequire(import.meta.url);" },
  logLevel: 'warning',
}

await rm(new URL('../dist', import.meta.url), { recursive: true, force: true })
// The manifest is rewritten after the bundle (oclif manifest); until then the CLI must not use a stale one.
await rm(new URL('../oclif.manifest.json', import.meta.url), { force: true })
await build({
  ...common,
  entryPoints: { index: 'src/index.ts' },
  splitting: true,
  // Lighter stand-ins for two packages oclif loads on every start: see the files for why.
  alias: { 'wsl-utils': './src/lib/cli/wsl-utils-shim.ts', debug: './src/lib/cli/debug-shim.ts' },
  plugins: [oclifPlainSort],
})
// The embedded log's writer thread, self-contained: a Worker loads it by URL, and sharing chunks with
// the CLI would only add files to every start.
await build({ ...common, entryPoints: { 'embedded-writer': 'src/lib/log/embedded/writer-thread.ts' }, splitting: false })
