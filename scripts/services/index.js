// The test servers: which exist, in which order they start, and up/down/status for the CLI
// (scripts/services.js) and for the integration tests' global setup.
import { endpoints } from './endpoints.js'
import { ServiceError, runningPid, say, stopProcess, waitUntilReady } from './lib.js'

/**
 * Each service module exports: `name`, `external` (true when an environment variable points at a server
 * run elsewhere), `ready()` — a real client call, true when the server is usable —, `start()` (fetch,
 * configure, launch), `readyTimeoutMs`, and optionally `afterUp()`.
 * Lightest first: Toxiproxy must run before the proxies are made; the JVMs start one after another.
 */
const REGISTRY = {
  toxiproxy: () => import('./toxiproxy.js'),
  elasticmq: () => import('./elasticmq.js'),
  kafka: () => import('./kafka.js'),
  cassandra: () => import('./cassandra.js'),
}

export const SERVICE_NAMES = Object.keys(REGISTRY)

/** The chosen service modules (all when none are named), in start order. */
export async function services(names = []) {
  const unknown = names.filter((n) => !(n in REGISTRY))
  if (unknown.length > 0) throw new ServiceError(`unknown service ${unknown.join(', ')}: choose from ${SERVICE_NAMES.join(', ')}`)
  const chosen = names.length === 0 ? SERVICE_NAMES : SERVICE_NAMES.filter((n) => names.includes(n))
  return Promise.all(chosen.map((n) => REGISTRY[n]()))
}

/** Starts what is not already up (idempotent). Throws a ServiceError naming the one that failed. */
export async function up(names = []) {
  const chosen = await services(names)
  for (const service of chosen) {
    const started = Date.now()
    if (await service.ready().catch(() => false)) {
      say(`${service.name}: up${service.external ? ' (external)' : ''}`)
      continue
    }
    if (service.external) {
      throw new ServiceError(`${service.name}: the server named by the environment is not reachable (${service.describe()})`)
    }
    let fresh = runningPid(service.name) === undefined
    if (fresh) {
      say(`${service.name}: starting…`)
      await service.start()
    } else say(`${service.name}: started earlier, waiting for it…`)
    try {
      await waitUntilReady(service.name, () => service.ready(), { timeoutMs: service.readyTimeoutMs })
    } catch (error) {
      // A process of ours that never answers (e.g. a JVM left alive after an OutOfMemoryError) is
      // replaced once; one we just started and that failed is reported.
      if (fresh || !(error instanceof ServiceError)) throw error
      say(`${service.name}: its process does not answer; starting it again`)
      await stopProcess(service.name)
      fresh = true
      await service.start()
      await waitUntilReady(service.name, () => service.ready(), { timeoutMs: service.readyTimeoutMs })
    }
    say(`${service.name}: up after ${((Date.now() - started) / 1000).toFixed(1)}s (${service.describe()})`)
  }
  // Toxiproxy's proxies point at the others; (re)make them whenever Toxiproxy is up.
  const toxiproxy = chosen.find((s) => s.name === 'toxiproxy') ?? (await services(['toxiproxy']))[0]
  if (await toxiproxy.ready().catch(() => false)) await toxiproxy.afterUp()
}

/** Stops exactly the processes this script started. */
export async function down(names = []) {
  const chosen = (await services(names)).reverse()
  for (const service of chosen) {
    if (await stopProcess(service.name)) say(`${service.name}: stopped`)
  }
}

export async function status(names = []) {
  const rows = []
  for (const service of await services(names)) {
    rows.push({
      name: service.name,
      pid: runningPid(service.name) ?? null,
      external: service.external,
      ready: await service.ready().catch(() => false),
      where: service.describe(),
    })
  }
  return rows
}

export { endpoints }
