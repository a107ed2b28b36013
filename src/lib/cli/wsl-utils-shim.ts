/**
 * Stands in for the `wsl-utils` package in the bundle (see scripts/build.mjs). oclif imports it on every
 * command only to read `isWsl`; the full package also loads child_process and PowerShell helpers, which
 * costs start-up time that `wal produce` in a shell loop pays on every call. Same answer, from the same
 * `is-wsl` check that wsl-utils re-exports.
 */
export { default as isWsl } from 'is-wsl'
