// Bundles the CLI into dist/ with esbuild: one file to load instead of hundreds of modules keeps
// `wal produce` start-up close to Node's own. Modules imported dynamically become their own chunks,
// so a backend's code (and its SDK, kept external) loads only when a namespace uses it.
import { build } from 'esbuild'
import { rm } from 'node:fs/promises'

await rm(new URL('../dist', import.meta.url), { recursive: true, force: true })
await build({
  entryPoints: ['src/index.ts'],
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  sourcemap: 'linked',
  minify: true,
  keepNames: true,
  // Heavy SDKs stay in node_modules and load lazily from their adapter.
  external: ['kafkajs', '@aws-sdk/*', 'cassandra-driver', 'typescript'],
  // Bundled CommonJS (oclif) calls require(); give ESM output one.
  banner: { js: "import { createRequire as __walCreateRequire } from 'node:module'; const require = __walCreateRequire(import.meta.url);" },
  logLevel: 'warning',
})
