// Types for kafka.js, whose privateBroker the integration tests use.
export interface PrivateBroker {
  brokers: string[]
  ready(): Promise<boolean>
  /** Starts it and waits until it answers. */
  start(): Promise<void>
  /** SIGTERM, then SIGKILL after graceMs; resolves once it is gone. */
  stop(options?: { graceMs?: number }): Promise<boolean>
}
export declare function privateBroker(options: { name: string; port: number; controllerPort: number; dataDir: string }): PrivateBroker
