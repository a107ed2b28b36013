/** The embedded log's SQLite schema. Shared with the benchmark, which inserts the same rows raw. */

export const SCHEMA_VERSION = 1

export const PRAGMAS = ['PRAGMA journal_mode = WAL', 'PRAGMA synchronous = FULL'] as const

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
  failures TEXT
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS records_position ON records (partition, offset);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  key TEXT PRIMARY KEY,
  id TEXT NOT NULL,
  partition INTEGER NOT NULL,
  offset INTEGER NOT NULL
) WITHOUT ROWID;
`

export const INSERT_RECORD = `INSERT INTO records
  (partition, offset, id, key, appended_at, created_at, not_before, target, idempotency_key, attempts, headers, payload, failures)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
