import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'

export default class DaemonLogs extends WalCommand {
  static override enableJsonFlag = false
  static override summary = "Print the daemon's log (JSON lines); -f keeps printing new lines until Ctrl-C."
  static override examples = ['<%= config.bin %> daemon logs', '<%= config.bin %> daemon logs -f', "<%= config.bin %> daemon logs | jq 'select(.level >= 40)'"]
  static override flags = {
    follow: Flags.boolean({ char: 'f', description: 'Keep printing lines as they are written.' }),
    // Every command takes --json; the log is JSON lines already, so here it changes nothing.
    json: Flags.boolean({ description: 'Accepted as by every command: the log is JSON lines either way.' }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonLogs)
    const { daemonLogs } = await import('../../lib/daemon/control.js')
    await daemonLogs({ ...this.common(flags), follow: flags.follow, signal: this.signal })
  }
}
