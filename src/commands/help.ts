import * as Args from '@oclif/core/args'
import { Command } from '@oclif/core/command'
import { loadHelpClass } from '@oclif/core/help'

import { UsageError } from '../lib/errors.js'
import { suggestCommand } from '../lib/cli/suggest.js'

export default class Help extends Command {
  static override summary = 'Show help for wal, or for one command (as COMMAND --help or -h does).'
  static override strict = false
  static override args = { command: Args.string({ description: 'A command, e.g. produce or "dlq replay".' }) }
  static override examples = ['<%= config.bin %> help', '<%= config.bin %> help produce', '<%= config.bin %> help dlq replay']

  async run(): Promise<void> {
    const { argv } = await this.parse(Help)
    const words = (argv as string[]).filter((a) => !a.startsWith('-'))
    const id = words.join(':')
    if (id !== '' && !this.config.findCommand(id) && !this.config.findTopic(id)) {
      const suggestion = suggestCommand(id, this.config.commandIDs)
      const error = new UsageError(`unknown command "${words.join(' ')}"`, {
        suggestions: [...(suggestion === undefined ? [] : [`did you mean: wal help ${suggestion}`]), 'see the commands with: wal help'],
      })
      process.stderr.write(`wal: ${error.message}\n${error.suggestions.map((s) => `  hint: ${s}\n`).join('')}`)
      this.exit(error.exitCode)
    }
    const HelpClass = await loadHelpClass(this.config)
    await new HelpClass(this.config, this.config.pjson.oclif.helpOptions).showHelp(words)
  }
}
