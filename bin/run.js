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
// Caches compiled code between runs: scripts call `wal produce` in loops, so start-up time matters.
const { enableCompileCache } = await import('node:module')
enableCompileCache?.()
const { run } = await import('../dist/index.js')
await run(import.meta.url)
