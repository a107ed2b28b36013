/**
 * Tables a Cassandra target declares in the config (`tables:`): checked against system_schema when a
 * consumer starts, so a missing table, column or key column stops it with a message that names it
 * (exit 3) instead of dead-lettering every mutation; and created by `wal ns init`.
 */
import type { CassandraTableDeclaration } from '../../config/schema.js'
import { quote, type TableSchema } from './statements.js'

/** `CREATE TABLE IF NOT EXISTS` for a declared table. */
export function createTableStatement(keyspace: string, table: string, declared: CassandraTableDeclaration): string {
  const columns = Object.entries(declared.columns).map(([name, type]) => `${quote(name)} ${type}`)
  const partition = declared.partitionKey.map(quote).join(', ')
  const clustering = (declared.clusteringKey ?? []).map(quote)
  const key = clustering.length > 0 ? `(${partition}), ${clustering.join(', ')}` : `(${partition})`
  return `CREATE TABLE IF NOT EXISTS ${quote(keyspace)}.${quote(table)} (${columns.join(', ')}, PRIMARY KEY (${key}))`
}

/** `CREATE KEYSPACE IF NOT EXISTS` with the target's replication settings. */
export function createKeyspaceStatement(keyspace: string, replication: Record<string, string | number>): string {
  const entries = Object.entries(replication).map(([k, value]) => `'${k.replaceAll("'", "''")}': ${typeof value === 'number' ? value : `'${value.replaceAll("'", "''")}'`}`)
  return `CREATE KEYSPACE IF NOT EXISTS ${quote(keyspace)} WITH replication = {${entries.join(', ')}}`
}

/** Type names as system_schema spells them. */
function normalType(type: string): string {
  return type.replaceAll(/\s+/g, '').replaceAll(/\bvarchar\b/g, 'text')
}

/** What differs between a declared table and the one Cassandra has (empty: they agree). */
export function tableProblems(found: TableSchema | null, declared: CassandraTableDeclaration, keyspace: string, table: string): string[] {
  if (found === null) return [`table ${keyspace}.${table} does not exist`]
  const problems: string[] = []
  for (const [column, type] of Object.entries(declared.columns)) {
    const actual = found.columns.get(column)
    if (actual === undefined) problems.push(`table ${keyspace}.${table} has no column "${column}"`)
    else if (normalType(actual) !== normalType(type)) problems.push(`column ${keyspace}.${table}.${column} is ${actual}, not ${type}`)
  }
  const key = (names: readonly string[]): string => `(${names.join(', ')})`
  if (key(found.partitionKey) !== key(declared.partitionKey)) {
    problems.push(`the partition key of ${keyspace}.${table} is ${key(found.partitionKey)}, not ${key(declared.partitionKey)}`)
  }
  if (key(found.clustering) !== key(declared.clusteringKey ?? [])) {
    problems.push(`the clustering columns of ${keyspace}.${table} are ${key(found.clustering)}, not ${key(declared.clusteringKey ?? [])}`)
  }
  return problems
}
