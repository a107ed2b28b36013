
import { WalCommand } from '../../lib/cli/base-command.js'
import { durationFlag } from '../../lib/cli/flags.js'
import type { DaemonStopResult } from '../../lib/daemon/control.js'

export default class DaemonStop extends WalCommand {
  static override summary = 'Stop the daemon: drain its consumers, then exit; kill it if it takes longer than --timeout.'
  static override examples = ['<%= config.bin %> daemon stop', '<%= config.bin %> daemon stop --timeout 10s']
  static override flags = {
    timeout: durationFlag({ description: 'How long the drain may take before the daemon is killed (default: daemon.drainTimeoutMs + 10s).', min: 1000, max: 2 * 3_600_000, example: '45s' }),
  }

  async run(): Promise<DaemonStopResult> {
    const { flags } = await this.parse(DaemonStop)
    const { stopDaemon } = await import('../../lib/daemon/control.js')
    const result = await stopDaemon({ ...this.common(flags), timeout: flags.timeout })
    this.log(result.message)
    return result
  }
}
