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
import { allowYoungGeneration, NETWORK_YOUNG_GENERATION_CAP_BYTES } from '../../young-generation.js'
import { parseOperation, partsOf, type PartOperation } from '../operations.js'
import { TargetError, type BatchContext, type Target } from '../target.js'
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
  /** Requests in flight at most when a page of mutations is applied at once (applyBatch). */
  concurrency: number
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

/** A mutation's statements, built and checked, ready to run. */
interface Job {
  id: string
  parts: readonly PartOperation[]
  statements: readonly Statement[]
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
    allowYoungGeneration(NETWORK_YOUNG_GENERATION_CAP_BYTES)
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
    this.lookForReplacedHosts()
    const parts = partsOf(parseOperation(mutation))
    try {
      await this.run(this.statementsNow(mutation, parts) ?? (await this.statementsOf(mutation, parts)))
    } catch (error) {
      this.requestFailed()
      throw classifyCassandraError(error)
    }
  }

  /**
   * A page of mutations (each of a key with nothing else pending; a key may come more than once):
   * every statement of every mutation is built first, so one that cannot be (not an operation, an
   * unknown table or column, a number that does not fit) fails the batch before anything is sent. Then
   * they run `concurrency` at a time, each as apply() runs it (one statement, or a multi-part batch as
   * one logged batch or part by part). On the first failure no more are started and the batch throws:
   * the consumer applies each mutation again on its own, which rewrites the ones that landed with the
   * same cells and write times (idempotent). Two mutations of one key may run at the same time: their
   * write times (createdAt, in µs) decide which cell wins, as they do when applied one after the other,
   * so the end state is the same as applying them in order.
   */
  async applyBatch(mutations: readonly Mutation[], context?: BatchContext): Promise<void> {
    this.lookForReplacedHosts()
    try {
      const jobs: Job[] = new Array(mutations.length)
      for (let i = 0; i < mutations.length; i++) {
        const mutation = mutations[i]!
        const parts = partsOf(parseOperation(mutation))
        jobs[i] = this.statementsNow(mutation, parts) ?? (await this.statementsOf(mutation, parts))
      }
      await this.runConcurrently(jobs, context?.signal)
    } catch (error) {
      this.requestFailed()
      throw classifyCassandraError(error)
    }
  }

  private lookForReplacedHosts(): void {
    if (this.hostsMayChange) {
      this.hostsMayChange = false
      this.rememberHosts()
    }
  }

  private requestFailed(): void {
    this.hostsMayChange = true
    this.rememberHosts()
  }

  /**
   * A one-part mutation's statement when its table is known, without a promise (the hot path); undefined
   * when the table must be looked up (first use, or a column not seen yet: statementsOf looks again).
   */
  private statementsNow(mutation: Mutation, parts: readonly PartOperation[]): Job | undefined {
    if (parts.length !== 1) return undefined
    const schema = this.known.get(parts[0]!.table)
    if (schema === undefined) return undefined
    const timestamp = this.driver.types.Long.fromNumber(createdAtMicros(mutation.createdAtMs))
    try {
      return { id: mutation.id, parts, statements: [partStatement(schema, parts[0]!, timestamp, `mutation ${mutation.id}`)] }
    } catch (error) {
      if (error instanceof TargetError && error.code === 'CASSANDRA_COLUMN_UNKNOWN') return undefined
      throw error
    }
  }

  /** Every statement of a mutation, built before any is run: a bad part fails the whole mutation, none applied. */
  private async statementsOf(mutation: Mutation, parts: readonly PartOperation[]): Promise<Job> {
    const timestamp = this.driver.types.Long.fromNumber(createdAtMicros(mutation.createdAtMs))
    if (parts.length === 1) return { id: mutation.id, parts, statements: [await this.statementFor(parts[0]!, timestamp, `mutation ${mutation.id}`)] }
    const statements: Statement[] = []
    for (let i = 0; i < parts.length; i++) statements.push(await this.statementFor(parts[i]!, timestamp, `mutation ${mutation.id}, part ${i + 1} of ${parts.length}`))
    return { id: mutation.id, parts, statements }
  }

  /** Jobs `concurrency` at a time; after the first failure (or an abort) none is started, and it is thrown once the running ones end. */
  private async runConcurrently(jobs: readonly Job[], signal: AbortSignal | undefined): Promise<void> {
    let next = 0
    let failure: { error: unknown } | undefined
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < jobs.length) {
        if (signal?.aborted) {
          failure = { error: new TargetError('stopped before the whole batch was applied', { errorClass: 'retryable', code: 'CASSANDRA_BATCH_STOPPED' }) }
          return
        }
        const job = jobs[next++]!
        const { statements } = job
        try {
          // One statement (nearly always): sent as it is, without run()'s promise of its own.
          await (statements.length === 1 ? this.client.execute(statements[0]!.query, statements[0]!.params, this.requestOptions) : this.run(job))
        } catch (error) {
          failure ??= { error }
        }
      }
    }
    const workers: Array<Promise<void>> = new Array(Math.min(this.options.concurrency, jobs.length))
    for (let i = 0; i < workers.length; i++) workers[i] = worker()
    await Promise.all(workers)
    if (failure !== undefined) throw failure.error
  }

  /** Runs a mutation's statements: one, or several as one logged batch when they fit, else part by part. */
  private async run(job: Job): Promise<void> {
    const { statements } = job
    if (statements.length === 1) {
      await this.client.execute(statements[0]!.query, statements[0]!.params, this.requestOptions)
      return
    }
    const plan = planBatch(job.parts, this.options.maxBatchBytes)
    if (plan.mode === 'logged-batch' && !this.progress.has(job.id)) {
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
    await this.applyParts(job.id, statements)
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

