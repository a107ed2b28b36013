import { WalCommand } from '../lib/cli/base-command.js'
import { versionInfo, type VersionInfo } from '../lib/cli/version.js'

export default class Version extends WalCommand {
  static override summary = 'Show the version of wal, of the Node.js it runs on, and how it was installed.'
  static override examples = ['<%= config.bin %> version', '<%= config.bin %> version --json', '<%= config.bin %> --version']

  async run(): Promise<VersionInfo> {
    await this.parse(Version)
    const info = versionInfo(this.config.version)
    this.log(`wal ${info.version} (node ${info.node}, ${info.platform}-${info.arch}, ${info.build})`)
    return info
  }
}
