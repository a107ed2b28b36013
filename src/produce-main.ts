/**
 * `wal produce` on its own, for bin/run.js: scripts call it once per mutation, in loops. The same command
 * class as in the full table (src/index.ts), run the same way (without oclif's Config: see
 * lib/cli/direct.ts), bundled so that it loads in a few files rather than the thirty-odd chunks the full
 * table is split into (each ES module file costs start-up time of its own). Anything else on the command
 * line (help, another command, `produce <word>`) goes to the full table.
 */
import Produce from './commands/produce.js'
import { directCommand, runDirect } from './lib/cli/direct.js'

/** Runs `wal produce …`; `dir` is the bin's import.meta.url. */
export async function run(dir: string): Promise<void> {
  const direct = directCommand(process.argv.slice(2), ['produce'], () => false)
  if (direct === undefined) {
    // A path esbuild does not follow: the full table is its own bundle, beside this one.
    const full = new URL('./index.js', import.meta.url).href
    const { run: runFull } = (await import(full)) as { run(dir: string): Promise<void> }
    await runFull(dir)
    return
  }
  await runDirect(Produce, direct.id, direct.argv, new URL('../package.json', import.meta.url))
}
