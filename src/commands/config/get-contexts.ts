import { WalCommand } from '../../lib/cli/base-command.js'
import { renderContextList } from '../../lib/cli/render.js'
import type { ContextList } from '../../lib/config/show.js'

export default class ConfigGetContexts extends WalCommand {
  static override summary = 'List the contexts of the config file; * marks the one in use.'
  static override examples = ['<%= config.bin %> config get-contexts', '<%= config.bin %> config get-contexts --json']

  async run(): Promise<ContextList> {
    const { flags } = await this.parse(ConfigGetContexts)
    const { listContexts } = await import('../../lib/config/show.js')
    const list = await listContexts(this.common(flags))
    this.log(renderContextList(list))
    return list
  }
}
