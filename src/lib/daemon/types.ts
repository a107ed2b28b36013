/** Options and results of the daemon commands, apart from their implementation (loaded lazily). */
import type { CommonOptions } from '../io/context.js'

export interface DaemonRunOptions extends CommonOptions {
  /** Overrides daemon.host. */
  host?: string
  /** Overrides daemon.port; 0 picks a free port. */
  port?: number
  /** Ask for no token (as daemon.auth: none): loopback only, logged. */
  noAuth?: boolean
  /** Listen beyond loopback without TLS (as daemon.allowPlainHttp). */
  allowPlainHttp?: boolean
  /** Aborted on the first SIGTERM/SIGINT: drain and exit. */
  signal: AbortSignal
  /** Subscribes to the reload signal (SIGHUP); returns how to unsubscribe. */
  onReloadSignal(listener: () => void): () => void
}

export interface DaemonRunSummary {
  pid: number
  uptimeMs: number
  drainedMs: number
}
