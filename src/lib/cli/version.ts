/** What `wal version` reports: wal's version, the Node.js inside or under it, and how wal was built. */
export interface VersionInfo {
  version: string
  node: string
  platform: string
  arch: string
  /** "binary": the single executable (dist/wal), Node inside; "node": bin/run.js on an installed Node. */
  build: 'binary' | 'node'
}

/** Whether this process is the single executable built by `npm run build:binary`. */
export function isBinary(): boolean {
  return (globalThis as { __walSea?: boolean }).__walSea === true
}

export function versionInfo(version: string): VersionInfo {
  return { version, node: process.versions.node, platform: process.platform, arch: process.arch, build: isBinary() ? 'binary' : 'node' }
}
