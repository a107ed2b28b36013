import * as Flags from '@oclif/core/flags'

import { WalCommand } from '../../lib/cli/base-command.js'
import { countFlag } from '../../lib/cli/flags.js'
import type { DaemonRunSummary } from '../../lib/daemon/types.js'

export default class DaemonRun extends WalCommand {
  static override summary = 'Run the daemon in the foreground: every configured consumer, plus the HTTP API.'
  static override description = `Runs, in this process, a consumer for every target of every namespace in the config (the pipeline of \`wal consume\`), and the HTTP API (POST /v1/namespaces/NS/mutations, /healthz, /readyz, /metrics, /v1/status). Logs are JSON lines on stdout.
Requests to /v1/* need "Authorization: Bearer TOKEN": daemon.token (or WAL_DAEMON_TOKEN), else the token generated at the first start into $WAL_HOME/daemon/token (0600), which the other \`wal daemon\` commands and \`wal top\` read. Browser-style requests are refused (a Content-Type other than JSON/NDJSON, a foreign Host, an Origin not in daemon.allowedOrigins).
SIGTERM or Ctrl-C stops taking writes, drains the consumers (up to daemon.drainTimeoutMs) and exits 0; a second signal exits 130 at once. SIGHUP re-reads the config (as \`wal daemon reload\`). For systemd or containers; \`wal daemon start\` runs this detached.`
  static override examples = ['<%= config.bin %> daemon run', '<%= config.bin %> daemon run --port 0 -c /etc/wal/walrc.yaml']
  static override flags = {
    host: Flags.string({ description: 'Address to listen on (default: daemon.host, 127.0.0.1).' }),
    port: countFlag({ description: 'Port to listen on; 0 picks a free one (default: daemon.port, 7460).', min: 0, max: 65_535, example: '7460' }),
    'no-auth': Flags.boolean({ description: 'Ask no bearer token (as daemon.auth: none). Loopback only; logged as a warning.' }),
    'allow-plain-http': Flags.boolean({ description: 'Listen beyond loopback without TLS (as daemon.allowPlainHttp: true); a warning is logged.' }),
  }

  async run(): Promise<DaemonRunSummary> {
    const { flags } = await this.parse(DaemonRun)
    const { runDaemon } = await import('../../lib/daemon/daemon.js')
    const onReloadSignal = (listener: () => void): (() => void) => {
      process.on('SIGHUP', listener)
      return () => process.off('SIGHUP', listener)
    }
    return runDaemon({ ...this.common(flags), host: flags.host, port: flags.port, noAuth: flags['no-auth'], allowPlainHttp: flags['allow-plain-http'], signal: this.signal, onReloadSignal })
  }
}
