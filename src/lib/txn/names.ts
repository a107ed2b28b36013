/** The names transactions use in the log and on the wire (no imports: the envelope door uses them). */
export const TXN_HEADER = 'wal-txn'
export const TXN_SEQ_HEADER = 'wal-txn-seq'
export const TXN_COMMIT_HEADER = 'wal-txn-commit'

export const TXN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/
export const TXN_ID_EXPECTED = 'a transaction id: 1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit'
