import { WalCommand } from '../../lib/cli/base-command.js'

export default class ConfigShow extends WalCommand {
  static override summary = 'Print the effective configuration, defaults applied and secrets redacted.'
  static override examples = ['<%= config.bin %> config show', '<%= config.bin %> config show --json | jq .namespaces']

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(ConfigShow)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { effectiveConfig } = await import('../../lib/services.js')
    const config = await effectiveConfig(this.common(flags))
    this.log(JSON.stringify(config, null, 2))
    return config
  }
}
