/**
 * Names the slowest test files at the end of a run, so growth of the suite (and the file that caused
 * it) is visible in every CI log.
 */
import type { Reporter, TestModule } from 'vitest/node'

const SHOWN = 10

export default class SlowestFilesReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const rows = testModules
      .map((module) => ({ file: module.relativeModuleId, project: module.project.name, ms: module.diagnostic().duration }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, SHOWN)
    if (rows.length === 0) return
    const width = Math.max(...rows.map((row) => row.file.length))
    const lines = rows.map((row) => `  ${(row.ms / 1000).toFixed(1).padStart(6)} s  ${row.file.padEnd(width)}  ${row.project}`)
    process.stdout.write(`\nslowest ${rows.length} test files:\n${lines.join('\n')}\n`)
  }
}
