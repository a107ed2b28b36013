import { WalCommand } from '../../lib/cli/base-command.js'
import type { DaemonStatus } from '../../lib/daemon/control.js'

export default class DaemonStatusCommand extends WalCommand {
  static override summary = "Show the daemon's uptime and, per namespace, shard and target: state, lag, retries and DLQ counts."
  static override description = 'Asks the running daemon (GET /v1/status). Exits 7 when no daemon runs for this state directory.'
  static override examples = ['<%= config.bin %> daemon status', '<%= config.bin %> daemon status --json']

  async run(): Promise<DaemonStatus> {
    const { flags } = await this.parse(DaemonStatusCommand)
    const { daemonStatus } = await import('../../lib/daemon/control.js')
    const { renderDaemonStatus } = await import('../../lib/daemon/render.js')
    const status = await daemonStatus(this.common(flags))
    this.log(renderDaemonStatus(status))
    return status
  }
}
