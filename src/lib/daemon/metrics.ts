/**
 * The daemon's Prometheus metrics. Counters grow from the pipeline's outcomes as they happen (so they
 * survive a consumer's restart on reload); lag is read from the log when scraped.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

import type { TargetObserver } from '../pipeline/target-consumer.js'

export interface PartitionLag {
  namespace: string
  target: string
  partition: number
  lag: number
}

export interface DaemonMetricsOptions {
  /** Read at each scrape: uncommitted mutations per owned partition. */
  lag: () => Promise<PartitionLag[]>
}

export class DaemonMetrics {
  readonly registry = new Registry()
  readonly produced: Counter<'namespace'>
  readonly applied: Counter<'namespace' | 'target'>
  readonly retried: Counter<'namespace' | 'target'>
  readonly deadLettered: Counter<'namespace' | 'target'>
  readonly txnAborted: Counter<'namespace' | 'target'>
  readonly applySeconds: Histogram<'namespace' | 'target'>
  readonly endToEndSeconds: Histogram<'namespace' | 'target'>
  readonly httpRequests: Counter<'route' | 'code'>
  readonly httpShed: Counter<'reason'>
  readonly httpRefused: Counter<'status'>
  readonly produceSeconds: Histogram<'namespace'>

  constructor(options: DaemonMetricsOptions) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.produced = new Counter({ name: 'wal_produced_total', help: 'Mutations made durable through the HTTP API.', labelNames: ['namespace'], registers })
    this.applied = new Counter({ name: 'wal_applied_total', help: 'Mutations applied to a target.', labelNames: ['namespace', 'target'], registers })
    this.retried = new Counter({ name: 'wal_retried_total', help: 'Failed applies that will be retried.', labelNames: ['namespace', 'target'], registers })
    this.deadLettered = new Counter({ name: 'wal_dead_lettered_total', help: 'Mutations sent to the DLQ.', labelNames: ['namespace', 'target'], registers })
    this.txnAborted = new Counter({ name: 'wal_txn_aborted_total', help: 'Transactions aborted (no completion marker within txnTimeoutMs), as each target filed them in its DLQ.', labelNames: ['namespace', 'target'], registers })
    this.applySeconds = new Histogram({
      name: 'wal_apply_duration_seconds',
      help: 'Time one successful apply took at the target.',
      labelNames: ['namespace', 'target'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    })
    this.endToEndSeconds = new Histogram({
      name: 'wal_end_to_end_seconds',
      help: "From a mutation's createdAt to its apply (delays and retries included).",
      labelNames: ['namespace', 'target'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86_400],
      registers,
    })
    this.produceSeconds = new Histogram({
      name: 'wal_http_produce_duration_seconds',
      help: 'From a write request to its durable answer.',
      labelNames: ['namespace'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
    this.httpRequests = new Counter({ name: 'wal_http_requests_total', help: 'HTTP requests answered, by route and status.', labelNames: ['route', 'code'], registers })
    this.httpRefused = new Counter({ name: 'wal_http_refused_total', help: 'Requests refused before their body was read: wrong Host, Origin, token or content type (by status).', labelNames: ['status'], registers })
    this.httpShed = new Counter({ name: 'wal_http_shed_total', help: 'Requests refused to shed load (429/503) or too large (413).', labelNames: ['reason'], registers })
    new Gauge({
      name: 'wal_consumer_lag',
      help: 'Mutations not yet committed by a target, per owned partition.',
      labelNames: ['namespace', 'target', 'partition'],
      registers,
      async collect() {
        this.reset()
        for (const l of await options.lag().catch(() => [])) this.set({ namespace: l.namespace, target: l.target, partition: String(l.partition) }, l.lag)
      },
    })
  }

  /** The pipeline's hook for one consumer. */
  observer(namespace: string, target: string): TargetObserver {
    const labels = { namespace, target }
    const applied = this.applied.labels(labels)
    const applySeconds = this.applySeconds.labels(labels)
    const endToEnd = this.endToEndSeconds.labels(labels)
    return {
      applied: (mutation, applyMs) => {
        applied.inc()
        applySeconds.observe(applyMs / 1000)
        endToEnd.observe(Math.max(0, Date.now() - mutation.createdAtMs) / 1000)
      },
      retried: () => this.retried.inc(labels),
      deadLettered: () => this.deadLettered.inc(labels),
      txnAborted: () => this.txnAborted.inc(labels),
    }
  }
}
