/**
 * Reaching SQS: @aws-sdk/client-sqs, loaded only when an SQS namespace or target is used, a client built
 * from a named cluster (region, endpoint override, static keys, a profile or the default chain), and SDK
 * errors converted into wal's where the SDK is called. Shared by the SQS log backend and the SQS target.
 */
import type { SqsClusterSettings } from '../config/schema.js'
import { BackendUnavailableError, ClusterAccessError, DurabilityUnknownError, NotFoundError, WalError } from '../errors.js'

export type SqsModule = typeof import('@aws-sdk/client-sqs')
export type SqsClient = import('@aws-sdk/client-sqs').SQSClient

/** The SDK, imported on first use (never part of the start-up path of other commands). */
export function loadSqsSdk(): Promise<SqsModule> {
  return import('@aws-sdk/client-sqs')
}

/** A client for a cluster. The SDK's own retries are few: wal retries with its own backoff and says so. */
export async function sqsClient(cluster: SqsClusterSettings, options: { maxAttempts?: number } = {}): Promise<{ sdk: SqsModule; client: SqsClient }> {
  const sdk = await loadSqsSdk()
  const client = new sdk.SQSClient({
    region: cluster.region,
    // With an endpoint given (a proxy, a VPC endpoint, ElasticMQ), every request goes there, even where
    // the queue URLs the server hands out name another host.
    ...(cluster.endpoint ? { endpoint: cluster.endpoint, useQueueUrlAsEndpoint: false } : {}),
    // Static keys, else the profile, else the AWS default chain (environment, SSO, instance role…).
    ...(cluster.credentials ? { credentials: cluster.credentials } : cluster.profile ? { profile: cluster.profile } : {}),
    maxAttempts: options.maxAttempts ?? 3,
    // Without throwOnRequestTimeout the SDK only warns when a request takes too long, and waits on.
    requestHandler: { connectionTimeout: cluster.connectionTimeoutMs, requestTimeout: cluster.requestTimeoutMs, throwOnRequestTimeout: true },
  })
  return { sdk, client }
}

type SdkError = Error & { name: string; code?: string; $fault?: 'client' | 'server'; $metadata?: { httpStatusCode?: number }; cause?: unknown }

/** The network-level code of an SDK error (ECONNREFUSED, ETIMEDOUT, …), if it is one. */
export function networkCode(error: unknown): string | undefined {
  let e = error as SdkError | undefined
  for (let depth = 0; depth < 4 && e; depth++) {
    if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return e.code
    if (e.name === 'TimeoutError' || e.name === 'RequestTimeout') return 'ETIMEDOUT'
    e = e.cause as SdkError | undefined
  }
  const message = (error as Error | undefined)?.message ?? ''
  const match = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|socket hang up)\b/.exec(message)
  return match ? (match[1] === 'socket hang up' ? 'ECONNRESET' : match[1]) : undefined
}

/** Whether a request may have reached SQS before it failed (its outcome is then unknown). */
export function mayHaveArrived(error: unknown): boolean {
  const code = networkCode(error)
  return code !== undefined && code !== 'ECONNREFUSED' && code !== 'ENOTFOUND' && code !== 'EHOSTUNREACH'
}

const AUTH_ERRORS = ['InvalidClientTokenId', 'SignatureDoesNotMatch', 'AccessDenied', 'AccessDeniedException', 'UnrecognizedClientException', 'CredentialsProviderError', 'ExpiredToken', 'InvalidSecurity']
const NOT_FOUND_ERRORS = ['QueueDoesNotExist', 'AWS.SimpleQueueService.NonExistentQueue', 'NonExistentQueue']

export function isQueueMissing(error: unknown): boolean {
  const e = error as SdkError
  return NOT_FOUND_ERRORS.includes(e.name) || NOT_FOUND_ERRORS.includes(e.code ?? '') || /does not exist|NonExistentQueue/i.test(e.message ?? '')
}

/** A message that says what failed and how to fix it, for errors reaching SQS. */
export function describeSqsError(cluster: SqsClusterSettings, error: unknown, what: string, options: { unknownOutcome?: boolean } = {}): WalError {
  if (error instanceof WalError) return error
  const e = error as SdkError
  const where = `SQS cluster "${cluster.name}" (${cluster.endpoint ?? cluster.region})`
  const message = e.message || e.name
  if (AUTH_ERRORS.includes(e.name)) {
    return new ClusterAccessError(`${where}: ${what}: credentials refused: ${message}`, {
      code: 'WAL_SQS_AUTH',
      cause: error,
      suggestions: [`check the credentials under clusters.sqs.${cluster.name} (or the AWS profile and environment)`],
    })
  }
  if (isQueueMissing(error)) {
    return new NotFoundError(`${where}: ${what}: the queue does not exist`, { code: 'WAL_QUEUE_NOT_FOUND', cause: error, suggestions: ['create the queues with `wal ns init NS`'] })
  }
  const network = networkCode(error)
  if (network !== undefined) {
    if (options.unknownOutcome && mayHaveArrived(error)) {
      return new DurabilityUnknownError(`${where}: ${what}: no answer (${network})`, {
        code: 'WAL_DURABILITY_UNKNOWN',
        cause: error,
        suggestions: ['produce those lines again with the same idempotency keys (on FIFO queues SQS drops repeats within 5 minutes)'],
      })
    }
    return new BackendUnavailableError(`${where}: ${what}: cannot reach the endpoint (${network})`, {
      code: 'WAL_SQS_UNREACHABLE',
      cause: error,
      suggestions: ['check the endpoint and region, and that SQS can be reached from here', 'nothing acked was lost: run the command again once it is back'],
    })
  }
  if (e.$fault === 'server' || (e.$metadata?.httpStatusCode ?? 0) >= 500 || /Throttl|RequestThrottled|ServiceUnavailable|InternalError/i.test(e.name)) {
    return new BackendUnavailableError(`${where}: ${what}: ${message}`, { code: 'WAL_SQS_UNAVAILABLE', cause: error })
  }
  return new BackendUnavailableError(`${where}: ${what}: ${e.name}: ${message}`, { code: `WAL_SQS_${e.name.replace(/\W+/g, '_').toUpperCase()}`, cause: error })
}
