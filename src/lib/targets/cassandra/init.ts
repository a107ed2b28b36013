/**
 * `wal ns init` for a namespace's Cassandra targets: creates the keyspace (when the target gives its
 * replication) and the declared tables that do not exist, and reports those that do — with what
 * differs from the config, which it never changes.
 */
import type { NamespaceSettings, TargetSettings } from '../../config/schema.js'
import { ConfigError } from '../../errors.js'
import type { InitializedPart } from '../../ns/init.js'
import { createKeyspaceStatement, createTableStatement, tableProblems } from './declared-tables.js'
import { clientOptions, connectError, loadDriver } from './driver.js'
import type { TableSchema } from './statements.js'

type CassandraSettings = Extract<TargetSettings, { type: 'cassandra' }>
type Client = import('cassandra-driver').Client

async function tableSchema(client: Client, keyspace: string, table: string): Promise<TableSchema | null> {
  const result = await client.execute('SELECT column_name, kind, position, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?', [keyspace, table], { prepare: true })
  if (result.rowLength === 0) return null
  const rows = result.rows.map((r) => ({ column: String(r.get('column_name')), kind: String(r.get('kind')), position: Number(r.get('position')), type: String(r.get('type')) }))
  const keyOf = (kind: string): string[] =>
    rows
      .filter((r) => r.kind === kind)
      .sort((a, b) => a.position - b.position)
      .map((r) => r.column)
  return { keyspace, table, columns: new Map(rows.map((r) => [r.column, r.type])), partitionKey: keyOf('partition_key'), clustering: keyOf('clustering') }
}

async function initTarget(target: CassandraSettings, namespace: string): Promise<InitializedPart[]> {
  const driver = await loadDriver()
  const client = new driver.Client(clientOptions({ cluster: target.cluster, consistency: target.consistency, timeoutMs: Math.max(target.timeoutMs, 60_000) }, driver))
  const where = `target "${target.name}" of namespace "${namespace}"`
  try {
    await client.connect().catch((error: unknown) => {
      throw connectError(error, target.cluster, where)
    })
    const parts: InitializedPart[] = []
    const part = (role: string, name: string, status: 'created' | 'exists', warning?: string): InitializedPart => ({
      role,
      name,
      status,
      partitions: null,
      replicationFactor: null,
      ...(warning === undefined ? {} : { warning }),
    })
    const exists = (await client.execute('SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?', [target.keyspace], { prepare: true })).rowLength > 0
    if (!exists) {
      if (target.replication === null) {
        throw new ConfigError(`${where}: keyspace "${target.keyspace}" does not exist, and the target gives no replication to create it with`, {
          code: 'WAL_TARGET_SCHEMA',
          suggestions: [`set namespaces.${namespace}.targets.${target.name}.replication (e.g. { class: NetworkTopologyStrategy, ${target.cluster.localDataCenter}: 3 }), or create the keyspace by hand`],
        })
      }
      await client.execute(createKeyspaceStatement(target.keyspace, target.replication))
    }
    parts.push(part('keyspace', target.keyspace, exists ? 'exists' : 'created'))
    for (const [table, declared] of Object.entries(target.tables)) {
      const found = await tableSchema(client, target.keyspace, table)
      if (found === null) {
        await client.execute(createTableStatement(target.keyspace, table, declared))
        parts.push(part('table', `${target.keyspace}.${table}`, 'created'))
      } else {
        const problems = tableProblems(found, declared, target.keyspace, table)
        parts.push(part('table', `${target.keyspace}.${table}`, 'exists', problems.length > 0 ? `differs from the config: ${problems.join('; ')}` : undefined))
      }
    }
    return parts
  } finally {
    await client.shutdown().catch(() => undefined)
  }
}

/** Initializes every Cassandra target of a namespace. */
export async function initCassandraTargets(settings: NamespaceSettings): Promise<InitializedPart[]> {
  const parts: InitializedPart[] = []
  for (const target of settings.targets) if (target.type === 'cassandra') parts.push(...(await initTarget(target, settings.name)))
  return parts
}
