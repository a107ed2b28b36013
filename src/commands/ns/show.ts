import { WalCommand } from '../../lib/cli/base-command.js'
import { chosenNamespace, namespaceArg, namespaceOption } from '../../lib/cli/namespace-arg.js'
import { renderNamespace } from '../../lib/cli/render.js'
import type { NamespaceDetails } from '../../lib/ns/ns.js'

export default class NsShow extends WalCommand {
  static override summary = "Show a namespace's effective settings and its log: location, size, per-partition offsets."
  static override examples = ['<%= config.bin %> ns show', '<%= config.bin %> ns show orders --json']
  static override args = namespaceArg('Namespace to show')
  static override flags = namespaceOption('Namespace to show')

  async run(): Promise<NamespaceDetails> {
    const { args, flags } = await this.parse(NsShow)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { showNamespace } = await import('../../lib/ns/ns.js')
    const details = await showNamespace({ ...this.common(flags), namespace: chosenNamespace(args.namespace, flags.namespace) })
    this.log(renderNamespace(details))
    return details
  }
}
