/** `wal config validate|show`. */
import type { CommonOptions } from '../io/context.js'
import { loadConfig } from './load.js'
import { redactSecrets } from './redact.js'
import type { ResolvedConfig } from './schema.js'

export interface ConfigReport {
  valid: true
  /** The file used; null in zero-config mode. */
  path: string | null
  namespaces: string[]
}

export async function validateConfigFile(options: CommonOptions): Promise<ConfigReport> {
  const config = await loadConfig({ configPath: options.configPath, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  return { valid: true, path: config.path, namespaces: [...config.namespaces.keys()] }
}

/** The effective configuration, defaults applied and secrets redacted. */
export async function effectiveConfig(options: CommonOptions): Promise<Record<string, unknown>> {
  const config: ResolvedConfig = await loadConfig({ configPath: options.configPath, cwd: options.io.cwd, env: options.io.env, stderr: options.io.stderr })
  return redactSecrets({
    source: config.path,
    stateDir: config.stateDir,
    autoCreateNamespaces: config.autoCreateNamespaces,
    defaults: config.defaults,
    namespaces: Object.fromEntries(
      [...config.namespaces.values()].map(({ name, declared: _declared, ...settings }) => [name, settings]),
    ),
    daemon: config.daemon,
  }) as Record<string, unknown>
}
