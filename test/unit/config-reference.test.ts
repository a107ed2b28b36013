import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { configReference } from '../../src/lib/config/reference.js'

const ROOT = join(import.meta.dirname, '..', '..')

describe('the configuration reference (docs/config-reference.md)', () => {
  it('is what the schema gives: run `npm run docs:config` after changing the schema', () => {
    expect(readFileSync(join(ROOT, 'docs', 'config-reference.md'), 'utf8')).toBe(configReference())
  })

  it('lists every top-level key, a target type\'s keys, and what each accepts', () => {
    const text = configReference()
    for (const key of ['stateDir', 'defaultNamespace', 'contexts', 'autoCreateNamespaces', 'defaults.partitions', 'namespaces.<name>.targets', 'daemon.port']) {
      expect(text).toContain(`| \`${key}\` |`)
    }
    expect(text).toMatch(/\| `namespaces\.<name>\.targets\.<name>\[type=http\]\.url` \|/)
    expect(text).toMatch(/\| `namespaces\.<name>\.backend` \| `embedded` \\\| `kafka` \\\| `sqs` \|/)
  })
})
