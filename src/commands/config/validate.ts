import { WalCommand } from '../../lib/cli/base-command.js'
import { renderConfigReport } from '../../lib/cli/render.js'
import type { ConfigReport } from '../../lib/config/show.js'

export default class ConfigValidate extends WalCommand {
  static override summary = 'Check the configuration; errors name the file, the key, what was expected and what was found.'
  static override examples = ['<%= config.bin %> config validate', '<%= config.bin %> config validate -c ./prod.walrc.yaml --json']

  async run(): Promise<ConfigReport> {
    const { flags } = await this.parse(ConfigValidate)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { validateConfigFile } = await import('../../lib/config/show.js')
    const report = await validateConfigFile(this.common(flags))
    this.log(renderConfigReport(report))
    return report
  }
}
