import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import type { DaemonStopResult } from '../../lib/daemon/control.js'

export default class DaemonStop extends WalCommand {
  static override summary = 'Stop the daemon: drain its consumers, then exit; kill it if it takes longer than --timeout.'
  static override examples = ['<%= config.bin %> daemon stop', '<%= config.bin %> daemon stop --timeout 10s']
  static override flags = {
    timeout: Flags.string({ description: 'How long the drain may take before the daemon is killed (default: daemon.drainTimeoutMs + 10s).' }),
  }

  async run(): Promise<DaemonStopResult> {
    const { flags } = await this.parse(DaemonStop)
    const { stopDaemon } = await import('../../lib/daemon/control.js')
    const result = await stopDaemon({ ...this.common(flags), timeout: flags.timeout })
    this.log(result.message)
    return result
  }
}
