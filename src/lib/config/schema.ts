/**
 * The configuration file's schema and its defaults, in one place. `.walrc.example` documents every key
 * here; keep the two in step.
 */
import * as v from 'valibot'

import { NamespaceName } from '../envelope/envelope.js'

/** Defaults for every setting that has one. */
export const DEFAULTS = {
  partitions: 8,
  maxPayloadBytes: 1024 * 1024,
  backend: 'embedded',
} as const

export const MAX_PARTITIONS = 1024
export const MAX_PAYLOAD_BYTES_LIMIT = 64 * 1024 * 1024

const Partitions = v.pipe(
  v.number('a whole number of partitions'),
  v.integer('a whole number of partitions'),
  v.minValue(1, `a number of partitions from 1 to ${MAX_PARTITIONS}`),
  v.maxValue(MAX_PARTITIONS, `a number of partitions from 1 to ${MAX_PARTITIONS}`),
)

const MaxPayloadBytes = v.pipe(
  v.number('a size in bytes'),
  v.integer('a whole number of bytes'),
  v.minValue(1, `a size from 1 to ${MAX_PAYLOAD_BYTES_LIMIT} bytes`),
  v.maxValue(MAX_PAYLOAD_BYTES_LIMIT, `a size from 1 to ${MAX_PAYLOAD_BYTES_LIMIT} bytes`),
)

export const NamespaceConfigSchema = v.strictObject({
  backend: v.optional(v.picklist(['embedded'], 'a backend: "embedded"')),
  partitions: v.optional(Partitions),
  maxPayloadBytes: v.optional(MaxPayloadBytes),
  description: v.optional(v.string('a description string')),
})

export const ConfigSchema = v.strictObject({
  stateDir: v.optional(v.pipe(v.string('a directory path'), v.minLength(1, 'a non-empty directory path'))),
  autoCreateNamespaces: v.optional(v.boolean('true or false')),
  defaults: v.optional(
    v.strictObject({
      partitions: v.optional(Partitions),
      maxPayloadBytes: v.optional(MaxPayloadBytes),
    }),
  ),
  namespaces: v.optional(v.record(NamespaceName, NamespaceConfigSchema)),
})

export type ConfigFile = v.InferOutput<typeof ConfigSchema>
export type NamespaceConfig = v.InferOutput<typeof NamespaceConfigSchema>

/** The effective settings of one namespace, defaults applied. */
export interface NamespaceSettings {
  name: string
  backend: 'embedded'
  partitions: number
  maxPayloadBytes: number
  description: string | null
  /** Whether the config file names it (false: created on demand in zero-config mode). */
  declared: boolean
}

/** The effective configuration. */
export interface ResolvedConfig {
  /** The file it came from; null when wal runs with no config file. */
  path: string | null
  stateDir: string
  autoCreateNamespaces: boolean
  defaults: { partitions: number; maxPayloadBytes: number }
  /** Declared namespaces, by name. */
  namespaces: ReadonlyMap<string, NamespaceSettings>
}
