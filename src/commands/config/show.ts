import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'

export default class ConfigShow extends WalCommand {
  static override summary = 'Print the effective configuration, defaults applied and secrets redacted.'
  static override description =
    'json (the default): the effective settings of every namespace, target and the daemon, as wal uses them. yaml: the config file in its own shape, checked, which wal reads back (secrets written in it become ${WAL_SECRET_…} references, listed at the top).'
  static override examples = ['<%= config.bin %> config show', '<%= config.bin %> config show --json | jq .namespaces', '<%= config.bin %> config show --format yaml > .walrc.yaml.new']
  static override flags = {
    format: Flags.string({ description: 'json: the effective settings; yaml: the config file, to paste back.', options: ['json', 'yaml'], default: 'json' }),
  }

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(ConfigShow)
    // Loaded on use (one chunk for every service), so `--help` and `--version` stay fast.
    const { configFileYaml, effectiveConfig } = await import('../../lib/config/show.js')
    if (flags.format === 'yaml' && !this.jsonEnabled()) {
      this.log((await configFileYaml(this.common(flags))).trimEnd())
      return {}
    }
    const config = await effectiveConfig(this.common(flags))
    this.log(JSON.stringify(config, null, 2))
    return config
  }
}
