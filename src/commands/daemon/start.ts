import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { countFlag } from '../../lib/cli/flags.js'
import type { DaemonStartResult } from '../../lib/daemon/control.js'

export default class DaemonStart extends WalCommand {
  static override summary = 'Start the daemon in the background; returns once it is ready.'
  static override description = 'Runs `wal daemon run` detached, with its pid file and log file in the state directory ($WAL_HOME/daemon/). Refuses when a daemon already runs for this state directory (exit 2).'
  static override examples = ['<%= config.bin %> daemon start', '<%= config.bin %> daemon start --port 8080', '<%= config.bin %> daemon start --json']
  static override flags = {
    host: Flags.string({ description: 'Address to listen on (default: daemon.host, 127.0.0.1).' }),
    port: countFlag({ description: 'Port to listen on; 0 picks a free one (default: daemon.port, 7460).', min: 0, max: 65_535, example: '7460' }),
    'no-auth': Flags.boolean({ description: 'Ask no bearer token (as daemon.auth: none). Loopback only; logged as a warning.' }),
    'allow-plain-http': Flags.boolean({ description: 'Listen beyond loopback without TLS (as daemon.allowPlainHttp: true); a warning is logged.' }),
  }

  async run(): Promise<DaemonStartResult> {
    const { flags } = await this.parse(DaemonStart)
    const { startDaemon } = await import('../../lib/daemon/control.js')
    const started = await startDaemon({ ...this.common(flags), host: flags.host, port: flags.port, noAuth: flags['no-auth'], allowPlainHttp: flags['allow-plain-http'], bin: process.argv[1]! })
    this.log(`daemon started: pid ${started.pid}, ${started.url}, log ${started.logFile}${started.tokenFile === null ? '' : `, bearer token in ${started.tokenFile}`}`)
    return started
  }
}
