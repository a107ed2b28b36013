import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../lib/cli/base-command.js'
import { bashScript, fishScript, zshScript, type CompletionCommand } from '../lib/cli/completion.js'

export default class Autocomplete extends WalCommand {
  static override summary = 'Print a shell completion script for bash, zsh or fish (commands, flags, and namespace and target names from the config).'
  static override description = `bash: source <(wal autocomplete bash)   (add the line to ~/.bashrc)
zsh:  source <(wal autocomplete zsh)    (add the line to ~/.zshrc)
fish: wal autocomplete fish > ~/.config/fish/completions/wal.fish
Namespace, target and context names are completed from the config found where TAB is pressed (as wal ns ls sees it).`
  static override examples = ['<%= config.bin %> autocomplete bash', 'source <(<%= config.bin %> autocomplete zsh)', '<%= config.bin %> autocomplete --list namespaces']
  static override enableJsonFlag = false
  static override args = { shell: Args.string({ description: 'The shell to print a script for.', options: ['bash', 'zsh', 'fish'] }) }
  static override flags = {
    list: Flags.string({ description: 'Print these names from the config, one a line (what the scripts call on TAB).', options: ['namespaces', 'targets', 'contexts'] }),
    namespace: Flags.string({ char: 'n', description: 'With --list targets: only the targets of this namespace.' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Autocomplete)
    if (flags.list !== undefined) {
      const { completionNames } = await import('../lib/ns/ns.js')
      for (const name of await completionNames(this.common(flags), flags.list as 'namespaces' | 'targets' | 'contexts', flags.namespace)) process.stdout.write(`${name}\n`)
      return
    }
    const shell = args.shell ?? shellFromEnv()
    const commands = this.config.commands as unknown as CompletionCommand[]
    process.stdout.write(shell === 'fish' ? fishScript(commands) : shell === 'zsh' ? zshScript(commands) : bashScript(commands))
  }
}

function shellFromEnv(): string {
  const name = (process.env.SHELL ?? '').split('/').at(-1) ?? ''
  return ['bash', 'zsh', 'fish'].includes(name) ? name : 'bash'
}
