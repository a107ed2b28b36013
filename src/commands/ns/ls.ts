import { WalCommand } from '../../lib/cli/base-command.js'
import { renderNamespaceList } from '../../lib/cli/render.js'
import type { NamespaceSummary } from '../../lib/ns/ns.js'

export default class NsLs extends WalCommand {
  static override summary = 'List namespaces: the declared ones, and in zero-config mode those with a log.'
  static override examples = ['<%= config.bin %> ns ls', '<%= config.bin %> ns ls --json']

  async run(): Promise<{ namespaces: NamespaceSummary[] }> {
    const { flags } = await this.parse(NsLs)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { listNamespaces } = await import('../../lib/ns/ns.js')
    const namespaces = await listNamespaces(this.common(flags))
    this.log(renderNamespaceList(namespaces))
    return { namespaces }
  }
}
