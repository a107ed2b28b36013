import * as Args from '@oclif/core/args'

import { WalCommand } from '../../lib/cli/base-command.js'

export default class ConfigUseContext extends WalCommand {
  static override summary = 'Use this context of the config file from now on (as kubectl config use-context); --context and WAL_CONTEXT still win.'
  static override description = `The choice is remembered per config file in $WAL_HOME/contexts.json (0600; $WAL_HOME as set in the environment, else ~/.local/state/wal). The context is loaded and checked first: one with errors is not chosen (exit 3).`
  static override examples = ['<%= config.bin %> config use-context staging', '<%= config.bin %> config use-context prod -c ./ops/.walrc.yaml']
  static override args = { name: Args.string({ description: 'A context under "contexts:" in the config file.', required: true }) }

  async run(): Promise<{ path: string; context: string; rememberedIn: string; stateDir: string }> {
    const { args, flags } = await this.parse(ConfigUseContext)
    const { useContext } = await import('../../lib/config/show.js')
    const result = await useContext({ ...this.common(flags), name: args.name })
    this.log(`now using context "${result.context}" of ${result.path} (state: ${result.stateDir})`)
    return result
  }
}
