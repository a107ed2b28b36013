/**
 * The Cassandra target: applies put/delete/batch operations to tables of one keyspace with prepared
 * statements, each written `USING TIMESTAMP` the mutation's createdAt in microseconds — so the end
 * state is the last write per cell by createdAt, whatever the order or number of applies (retries,
 * duplicates, DLQ replays). See statements.ts for the mapping.
 *
 * At start it connects and checks the keyspace: a wrong data center, refused credentials, a failed TLS
 * handshake or an unknown keyspace stop the consumer with a configuration error (exit 3) that names it.
 * Tables are looked up in system_schema when first used: an unknown table or column, or a missing
 * primary-key column, is fatal for that mutation (it goes to the DLQ, not into a retry loop).
 */
import type { CassandraClusterSettings, CassandraTableDeclaration, ConsistencyLevel } from '../../config/schema.js'
import { createdAtMicros } from '../../envelope/created-at.js'
import type { Mutation } from '../../envelope/envelope.js'
import { ConfigError, WalError } from '../../errors.js'
import { parseOperation, partsOf, type PartOperation } from '../operations.js'
import { TargetError, type Target } from '../target.js'
import { tableProblems } from './declared-tables.js'
import { classifyCassandraError, clientOptions, connectError, isBatchTooLarge, loadDriver, type CassandraDriver } from './driver.js'
import { jitterMs, partStatement, planBatch, type Statement, type TableSchema } from './statements.js'

type Client = import('cassandra-driver').Client
type DriverHost = { shutdown(waitForPending: boolean): Promise<void> }

export interface CassandraTargetOptions {
  name: string
  cluster: CassandraClusterSettings
  keyspace: string
  consistency: ConsistencyLevel
  timeoutMs: number
  /** Batches larger than this are applied part by part (see planBatch). */
  maxBatchBytes: number
  /** Delayed deletes are spread over up to this much more time. */
  deleteJitterMs: number
  /** Tables declared in the config: checked when the target opens. */
  tables: Record<string, CassandraTableDeclaration>
  /** For messages: where the target is declared. */
  where: string
}

/** Batches applied part by part and not finished yet: at most this many are remembered. */
const MAX_PROGRESS_ENTRIES = 10_000

export class CassandraTarget implements Target {
  readonly name: string
  private readonly tables = new Map<string, Promise<TableSchema | null>>()
  /** The tables loaded so far, for the hot path (no await when the schema is known). */
  private readonly known = new Map<string, TableSchema>()
  /** Parts already applied of batches applied part by part, by mutation id: a retry starts after them. */
  private readonly progress = new Map<string, number>()
  private closed = false
  /**
   * Every host object the driver has had. After an outage of all hosts, cassandra-driver 4.10 can
   * replace a host with a new object without shutting the old one down, and `client.shutdown()` then
   * misses the old one's pool and timer: the process would never exit (`consume --until-idle` hung).
   */
  private readonly hosts = new Set<DriverHost>()
  /** Set after a failed request: the next one (success or not) looks for replaced hosts. */
  private hostsMayChange = false
  private readonly requestOptions: { prepare: true; readTimeout: number }

  private constructor(
    private readonly options: CassandraTargetOptions,
    private readonly client: Client,
    private readonly driver: CassandraDriver,
  ) {
    this.name = options.name
    this.requestOptions = { prepare: true, readTimeout: options.timeoutMs }
    this.rememberHosts()
    client.on('hostAdd', (host: DriverHost) => this.hosts.add(host))
  }

  private rememberHosts(): void {
    // Host.shutdown exists at runtime but is internal, so not in the driver's types.
    for (const host of this.client.hosts.values()) this.hosts.add(host as unknown as DriverHost)
  }

  /** Connects and checks the keyspace. Throws a WalError: ConfigError (exit 3) or BackendUnavailableError (exit 5). */
  static async open(options: CassandraTargetOptions): Promise<CassandraTarget> {
    const driver = await loadDriver()
    const client = new driver.Client(clientOptions({ cluster: options.cluster, consistency: options.consistency, timeoutMs: options.timeoutMs }, driver))
    try {
      try {
        await client.connect()
      } catch (error) {
        throw connectError(error, options.cluster, options.where)
      }
      const found = await client.execute('SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?', [options.keyspace], { prepare: true })
      if (found.rowLength === 0) {
        throw new ConfigError(`${options.where}: keyspace "${options.keyspace}" does not exist in Cassandra cluster "${options.cluster.name}"`, {
          code: 'WAL_TARGET_SCHEMA',
          suggestions: ['create it (CREATE KEYSPACE …), or fix the keyspace name in the config'],
        })
      }
      const target = new CassandraTarget(options, client, driver)
      const problems: string[] = []
      for (const [table, declared] of Object.entries(options.tables)) problems.push(...tableProblems(await target.table(table), declared, options.keyspace, table))
      if (problems.length > 0) {
        throw new ConfigError(`${options.where}: ${problems.join('; ')}`, {
          code: 'WAL_TARGET_SCHEMA',
          details: { problems },
          suggestions: ['create the missing tables with `wal ns init NAMESPACE` (or by hand), or fix the tables declared for this target in the config'],
        })
      }
      return target
    } catch (error) {
      // The driver keeps sockets and timers until shut down: never leave one behind on a failed start.
      await client.shutdown().catch(() => undefined)
      if (error instanceof WalError) throw error
      throw connectError(error, options.cluster, options.where)
    }
  }

  /** A table's columns and key, from system_schema; null when it does not exist (not cached then). */
  private table(name: string, refresh = false): Promise<TableSchema | null> {
    let cached = refresh ? undefined : this.tables.get(name)
    if (cached === undefined) {
      cached = this.loadTable(name)
      this.tables.set(name, cached)
      cached.then(
        (schema) => (schema === null ? this.tables.delete(name) : this.known.set(name, schema)),
        () => this.tables.delete(name),
      )
    }
    return cached
  }

  private async loadTable(name: string): Promise<TableSchema | null> {
    const { keyspace } = this.options
    const result = await this.client.execute(
      'SELECT column_name, kind, position, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?',
      [keyspace, name],
      { prepare: true },
    )
    if (result.rowLength === 0) return null
    const rows = result.rows.map((r) => ({ column: String(r.get('column_name')), kind: String(r.get('kind')), position: Number(r.get('position')), type: String(r.get('type')) }))
    const keyOf = (kind: string): string[] =>
      rows
        .filter((r) => r.kind === kind)
        .sort((a, b) => a.position - b.position)
        .map((r) => r.column)
    return {
      keyspace,
      table: name,
      columns: new Map(rows.map((r) => [r.column, r.type])),
      partitionKey: keyOf('partition_key'),
      clustering: keyOf('clustering'),
      queries: new Map(),
    }
  }

  private unknownTable(table: string, where: string): TargetError {
    return new TargetError(`${where}: table ${this.options.keyspace}.${table} does not exist`, { errorClass: 'fatal', code: 'CASSANDRA_TABLE_UNKNOWN' })
  }

  /**
   * The statement of a part. A part naming a column the schema does not know has the table looked up
   * again once (the column may have been added since) before it is refused.
   */
  private async statementFor(part: PartOperation, timestamp: unknown, where: string): Promise<Statement> {
    const schema = this.known.get(part.table) ?? (await this.table(part.table))
    if (schema === null) throw this.unknownTable(part.table, where)
    try {
      return partStatement(schema, part, timestamp, where)
    } catch (error) {
      if (!(error instanceof TargetError) || error.code !== 'CASSANDRA_COLUMN_UNKNOWN') throw error
      const fresh = await this.table(part.table, true)
      if (fresh === null) throw this.unknownTable(part.table, where)
      return partStatement(fresh, part, timestamp, where)
    }
  }

  /** Delayed deletes are spread over deleteJitterMs, so a bulk delete scheduled for one time arrives as a trickle. */
  deliveryTimeMs(mutation: Mutation): number | null {
    const { notBeforeMs } = mutation
    if (notBeforeMs === null || this.options.deleteJitterMs <= 0 || mutation.payload.encoding !== 'json') return notBeforeMs
    try {
      const operation = parseOperation(mutation)
      const deletesOnly = partsOf(operation).every((p) => p.op === 'delete')
      return deletesOnly ? notBeforeMs + jitterMs(mutation.id, this.options.deleteJitterMs) : notBeforeMs
    } catch {
      // Not an operation: apply (and dead-letter) it on time.
      return notBeforeMs
    }
  }

  async apply(mutation: Mutation): Promise<void> {
    if (this.hostsMayChange) {
      this.hostsMayChange = false
      this.rememberHosts()
    }
    const parts = partsOf(parseOperation(mutation))
    const timestamp = this.driver.types.Long.fromNumber(createdAtMicros(mutation.createdAtMs))
    try {
      if (parts.length === 1) {
        const statement = await this.statementFor(parts[0]!, timestamp, `mutation ${mutation.id}`)
        await this.client.execute(statement.query, statement.params, this.requestOptions)
        return
      }
      // Every statement is built before any is run: a bad part fails the whole mutation, none applied.
      const statements: Statement[] = []
      for (let i = 0; i < parts.length; i++) statements.push(await this.statementFor(parts[i]!, timestamp, `mutation ${mutation.id}, part ${i + 1} of ${parts.length}`))
      const plan = planBatch(parts, this.options.maxBatchBytes)
      if (plan.mode === 'logged-batch' && !this.progress.has(mutation.id)) {
        try {
          await this.client.batch(
            statements.map((s) => ({ query: s.query, params: s.params })),
            { ...this.requestOptions, logged: true },
          )
          return
        } catch (error) {
          // Cassandra counts bytes its own way: a batch it finds too large still goes, part by part.
          if (!isBatchTooLarge(error)) throw error
        }
      }
      await this.applyParts(mutation.id, statements)
    } catch (error) {
      this.hostsMayChange = true
      this.rememberHosts()
      throw classifyCassandraError(error)
    }
  }

  /** Parts in order, each recorded once applied: a retry (in this process) starts after the last one done. */
  private async applyParts(id: string, statements: readonly Statement[]): Promise<void> {
    const from = this.progress.get(id) ?? 0
    for (let i = from; i < statements.length; i++) {
      try {
        await this.client.execute(statements[i]!.query, statements[i]!.params, this.requestOptions)
      } catch (error) {
        const classified = classifyCassandraError(error)
        throw new TargetError(`part ${i + 1} of ${statements.length} failed${i > 0 ? ` (parts 1-${i} are applied and are skipped on retry)` : ''}: ${classified.message}`, {
          errorClass: classified.errorClass,
          code: classified.code,
          cause: error,
        })
      }
      if (i + 1 < statements.length) {
        if (!this.progress.has(id) && this.progress.size >= MAX_PROGRESS_ENTRIES) this.progress.delete(this.progress.keys().next().value!)
        this.progress.set(id, i + 1)
      }
    }
    this.progress.delete(id)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.rememberHosts()
    await this.client.shutdown()
    // Hosts the driver replaced (see `hosts`): shut down too, so no socket or timer outlives the target.
    await Promise.all([...this.hosts].map((host) => host.shutdown(false).catch(() => undefined)))
  }
}

