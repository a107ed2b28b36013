// Types for endpoints.js, which the TypeScript tests import.
export declare const CACHE_DIR: string
export declare const RUN_DIR: string
export declare const endpoints: {
  kafka: {
    external: boolean
    brokers: string[]
    sslBrokers: string[]
    saslBrokers: string[]
    toxicBrokers: string[]
    toxicUpstream: string
    controllerPort: number
    scram: { username: string; password: string }
    tls: { dir: string }
  }
  cassandra: {
    external: boolean
    contactPoints: string[]
    localDataCenter: string
    toxicContactPoints: string[]
    storagePort: number
  }
  sqs: {
    external: boolean
    endpoint: string
    toxicEndpoint: string
    region: string
    credentials: { accessKeyId: string; secretAccessKey: string }
  }
  toxiproxy: {
    external: boolean
    api: string
    proxies: Record<string, { listen: string; upstream: string }>
  }
}
