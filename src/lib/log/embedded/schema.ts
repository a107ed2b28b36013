/** The embedded log's SQLite schema. Shared with the benchmark, which inserts the same rows raw. */

export const SCHEMA_VERSION = 1

export const PRAGMAS = ['PRAGMA journal_mode = WAL', 'PRAGMA synchronous = FULL'] as const

/**
 * Transactions (see txn/txn.ts): one row per transaction, and where each of its parts is, by sequence
 * number. Written in the same SQLite transaction as the records they describe.
 */
export const TXN_DDL = `
CREATE TABLE IF NOT EXISTS txns (
  txn TEXT PRIMARY KEY,
  opened_at INTEGER NOT NULL,
  parts INTEGER NOT NULL,
  committed_at INTEGER,
  marker_partition INTEGER,
  marker_offset INTEGER,
  aborted_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txns_open ON txns (opened_at) WHERE committed_at IS NULL AND aborted_at IS NULL;
CREATE TABLE IF NOT EXISTS txn_parts (
  txn TEXT NOT NULL,
  seq INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  PRIMARY KEY (txn, seq)
) WITHOUT ROWID;
`

export const DDL = `
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partitions (
  partition INTEGER PRIMARY KEY,
  next_offset INTEGER NOT NULL
);
-- seq is the global append order; (partition, offset) the Kafka-like position.
-- payload is TEXT (JSON) or BLOB (bytes): SQLite keeps the type, so it also tells the encoding.
CREATE TABLE IF NOT EXISTS records (
  seq INTEGER PRIMARY KEY,
  partition INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  id TEXT NOT NULL,
  key TEXT NOT NULL,
  appended_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  not_before INTEGER,
  target TEXT,
  idempotency_key TEXT,
  attempts INTEGER NOT NULL,
  headers TEXT,
  payload ANY NOT NULL,
  failures TEXT,
  -- createdAt in microseconds when it has more precision than created_at (ms); null otherwise.
  created_at_us INTEGER
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS records_position ON records (partition, offset);
${TXN_DDL}
CREATE TABLE IF NOT EXISTS idempotency_keys (
  key TEXT PRIMARY KEY,
  id TEXT NOT NULL,
  partition INTEGER NOT NULL,
  offset INTEGER NOT NULL
) WITHOUT ROWID;
`

export const INSERT_RECORD = `INSERT INTO records
  (partition, offset, id, key, appended_at, created_at, not_before, target, idempotency_key, attempts, headers, payload, failures, created_at_us)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

/** Logs created before createdAt had microseconds lack created_at_us: added when such a log is opened. */
export const ADD_CREATED_AT_US = 'ALTER TABLE records ADD COLUMN created_at_us INTEGER'

/** Consumer state written before leases had epochs: added when such a log's consumer state is opened. */
export const ADD_LEASE_EPOCH = 'ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0'

/** History written before it recorded the delivery (which copy of a mutation): added on open. */
export const ADD_HISTORY_DELIVERY = 'ALTER TABLE history ADD COLUMN delivery INTEGER'

/** Consumer state, per target: offsets, leases, scheduled (delayed or backing-off) mutations, DLQ, history. */
export const CONSUMER_DDL = `
CREATE TABLE IF NOT EXISTS consumer_offsets (
  target TEXT NOT NULL,
  partition INTEGER NOT NULL,
  next_offset INTEGER NOT NULL,
  PRIMARY KEY (target, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
  target TEXT NOT NULL,
  partition INTEGER NOT NULL,
  -- '' once released (the row stays, keeping the epoch).
  owner TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  -- The fencing token: grows by one at each acquisition; a commit must name the epoch it holds.
  epoch INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (target, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumers (
  target TEXT NOT NULL,
  owner TEXT NOT NULL,
  shard TEXT NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  PRIMARY KEY (target, owner)
) WITHOUT ROWID;
-- Mutations waiting for their time: delayed (notBefore), backing off between attempts, or queued behind
-- such a mutation of the same key. seq keeps per-key order.
CREATE TABLE IF NOT EXISTS scheduled (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  target TEXT NOT NULL,
  partition INTEGER NOT NULL,
  key TEXT NOT NULL,
  due_at INTEGER NOT NULL,
  envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scheduled_key ON scheduled (target, key, seq);
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled (target, due_at);
CREATE TABLE IF NOT EXISTS dlq (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  target TEXT NOT NULL,
  partition INTEGER NOT NULL,
  id TEXT NOT NULL,
  key TEXT NOT NULL,
  dead_at INTEGER NOT NULL,
  error_class TEXT NOT NULL,
  code TEXT NOT NULL,
  message TEXT NOT NULL,
  envelope TEXT NOT NULL,
  -- Replayed too often (the loop guard): kept out of replays until dealt with by hand.
  parked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dlq_target ON dlq (target, seq);
CREATE INDEX IF NOT EXISTS dlq_id ON dlq (id);
-- One line per operator action on the DLQ (replay, purge): who, when, what, how many.
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  details TEXT NOT NULL
);
-- What happened to each mutation at each target, for \`wal explain\`.
CREATE TABLE IF NOT EXISTS history (
  mutation_id TEXT NOT NULL,
  target TEXT NOT NULL,
  at INTEGER NOT NULL,
  event TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  error_class TEXT,
  code TEXT,
  message TEXT,
  -- Which copy of the mutation (0 as produced, n after its n-th replay); null in older state.
  delivery INTEGER
);
CREATE INDEX IF NOT EXISTS history_mutation ON history (mutation_id);
-- Mutations operators marked not to apply (\`wal skip\`): at one target, or at any ('').
CREATE TABLE IF NOT EXISTS skips (
  id TEXT NOT NULL,
  target TEXT NOT NULL,
  reason TEXT,
  actor TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (id, target)
) WITHOUT ROWID;
-- Per target, how far each transaction was applied (its parts in sequence order), or that it was aborted.
CREATE TABLE IF NOT EXISTS txn_progress (
  target TEXT NOT NULL,
  txn TEXT NOT NULL,
  applied_seq INTEGER NOT NULL,
  state TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (target, txn)
) WITHOUT ROWID;
`
