import { WalCommand } from '../../lib/cli/base-command.js'
import type { ReloadResult } from '../../lib/daemon/control.js'

export default class DaemonReload extends WalCommand {
  static override summary = 'Apply config changes to the running daemon without a restart.'
  static override description = `The daemon re-reads its config file: consumers of added namespaces and targets start, removed ones drain and stop, changed ones restart, and the others are left alone. An invalid config is rejected (exit 3, with why) and the daemon keeps running the previous one. SIGHUP does the same.`
  static override examples = ['<%= config.bin %> daemon reload', '<%= config.bin %> daemon reload --json']

  async run(): Promise<ReloadResult> {
    const { flags } = await this.parse(DaemonReload)
    const { reloadDaemon } = await import('../../lib/daemon/control.js')
    const { renderReload } = await import('../../lib/daemon/render.js')
    const result = await reloadDaemon(this.common(flags))
    this.log(renderReload(result))
    return result
  }
}
