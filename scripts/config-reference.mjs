// `npm run docs:config`: writes docs/config-reference.md from the config schema (src/lib/config/reference.ts).
// `--check`: exits 1 when the file is not current (test/unit/config-reference.test.ts checks the same).
import { build } from 'esbuild'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const OUT = join(ROOT, 'docs', 'config-reference.md')
const dir = mkdtempSync(join(tmpdir(), 'wal-config-reference-'))
try {
  await build({ entryPoints: [join(ROOT, 'src/lib/config/reference.ts')], bundle: true, format: 'esm', platform: 'node', outfile: join(dir, 'reference.mjs'), logLevel: 'warning' })
  const { configReference } = await import(pathToFileURL(join(dir, 'reference.mjs')).href)
  const text = configReference()
  if (process.argv.includes('--check')) {
    let current = ''
    try {
      current = readFileSync(OUT, 'utf8')
    } catch {
      // missing: not current
    }
    if (current !== text) {
      console.error('docs/config-reference.md is not current: run npm run docs:config')
      process.exit(1)
    }
  } else {
    writeFileSync(OUT, text)
    console.log(`wrote ${OUT}`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
