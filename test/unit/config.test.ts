import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { load as parseYaml } from 'js-yaml'
import { describe, expect, it } from 'vitest'

import { interpolateEnv } from '../../src/lib/config/interpolate.js'
import { namespaceSettings, resolveConfig, validateConfig } from '../../src/lib/config/load.js'
import { REDACTED, redactSecrets } from '../../src/lib/config/redact.js'
import { findConfig, mightHaveConfig } from '../../src/lib/config/search.js'
import { ConfigSchema } from '../../src/lib/config/schema.js'
import { ConfigError, UnknownNamespaceError, UsageError } from '../../src/lib/errors.js'
import { ROOT } from '../helpers/wal.js'

const env = { HOME: '/home/op', WAL_HOME: '/var/lib/wal' }

function configError(raw: unknown): ConfigError {
  try {
    validateConfig(raw, '/etc/wal/.walrc.yaml', env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error('expected a config error')
}

describe('config validation', () => {
  it('names the file, key path, expected and found', () => {
    const error = configError({ namespaces: { orders: { partitions: 0 } } })
    expect(error.message).toBe('/etc/wal/.walrc.yaml: key "namespaces.orders.partitions": expected a number of partitions from 1 to 1024, found 0')
    expect(error.details).toMatchObject({ file: '/etc/wal/.walrc.yaml', keyPath: 'namespaces.orders.partitions', found: '0' })
  })

  it('rejects unknown keys with the allowed ones and a suggestion', () => {
    const error = configError({ defaults: { maxPayloadByte: 5 } })
    expect(error.message).toBe('/etc/wal/.walrc.yaml: unknown key "defaults.maxPayloadByte"')
    expect(error.suggestions).toEqual(['did you mean "defaults.maxPayloadBytes"?', 'allowed here: partitions, maxPayloadBytes, txnTimeoutMs, retry'])
  })

  it('lists the keys of the target type in use when a target has an unknown key', () => {
    const error = configError({ namespaces: { orders: { targets: { api: { type: 'http', url: 'http://127.0.0.1:8080', timeoutMS: 500 } } } } })
    expect(error.message).toBe('/etc/wal/.walrc.yaml: unknown key "namespaces.orders.targets.api.timeoutMS"')
    expect(error.suggestions[0]).toBe('did you mean "namespaces.orders.targets.api.timeoutMs"?')
    expect(error.suggestions[1]).toMatch(/^allowed here: type, .*url.*timeoutMs/)
  })

  it('says an empty value or list is empty, not that its length is 0', () => {
    expect(configError({ clusters: { sqs: { a: { region: '' } } } }).message).toMatch(/"clusters\.sqs\.a\.region": expected a non-empty value, found ""$/)
    expect(configError({ clusters: { kafka: { a: { brokers: [] } } } }).message).toMatch(/"clusters\.kafka\.a\.brokers": expected at least one broker host:port, found an empty list$/)
  })

  it('rejects invalid namespace names and unknown backends', () => {
    expect(configError({ namespaces: { 'bad/name': {} } }).message).toMatch(/namespaces\.bad\/name.*namespace name/)
    expect(configError({ namespaces: { a: { backend: 'postgres' } } }).message).toMatch(/expected a backend: "embedded", "kafka" or "sqs", found "postgres"/)
  })

  it('treats an empty file as no settings', () => {
    expect(validateConfig(undefined, 'f', env)).toEqual({})
  })
})

describe('effective config', () => {
  it('without a file: state in WAL_HOME, namespaces created on demand with the defaults', () => {
    const config = resolveConfig(null, null, env)
    expect(config).toMatchObject({ path: null, stateDir: '/var/lib/wal', autoCreateNamespaces: true, defaults: { partitions: 8, maxPayloadBytes: 1048576 } })
    expect(namespaceSettings(config, 'anything')).toMatchObject({ name: 'anything', backend: 'embedded', partitions: 8, declared: false })
  })

  it('falls back to XDG_STATE_HOME, then ~/.local/state', () => {
    expect(resolveConfig(null, null, { HOME: '/h', XDG_STATE_HOME: '/x' }).stateDir).toBe('/x/wal')
    expect(resolveConfig(null, null, {}).stateDir).toMatch(/\.local\/state\/wal$/)
  })

  it('with declared namespaces: defaults apply, and an undeclared one is an error listing them', () => {
    const file = validateConfig({ stateDir: 'state', defaults: { partitions: 3 }, namespaces: { a: {}, b: { partitions: 5 } } }, '/srv/app/.walrc.yaml', env)
    const config = resolveConfig(file, '/srv/app/.walrc.yaml', env)
    expect(config.stateDir).toBe('/srv/app/state')
    expect(namespaceSettings(config, 'a').partitions).toBe(3)
    expect(namespaceSettings(config, 'b').partitions).toBe(5)
    expect(() => namespaceSettings(config, 'c')).toThrow(UnknownNamespaceError)
    expect(() => namespaceSettings(config, 'c')).toThrow(/namespace "c" is not declared in \/srv\/app\/\.walrc\.yaml/)
  })

  it('lets autoCreateNamespaces re-open on-demand namespaces next to declared ones', () => {
    const config = resolveConfig(validateConfig({ autoCreateNamespaces: true, namespaces: { a: {} } }, '/f', env), '/f', env)
    expect(namespaceSettings(config, 'c').declared).toBe(false)
  })

  it('refuses namespace names that could escape the state directory', () => {
    expect(() => namespaceSettings(resolveConfig(null, null, env), '../x')).toThrow(UsageError)
  })
})

describe('${ENV} interpolation', () => {
  it('replaces variables, uses fallbacks, keeps $${ literal, and walks arrays and objects', () => {
    const out = interpolateEnv({ a: '${A}-${B:-b}', list: ['${A}'], n: 5, lit: '$${A}' }, { A: 'x' }, (p) => p)
    expect(out).toEqual({ a: 'x-b', list: ['x'], n: 5, lit: '${A}' })
  })

  it('names the key and the variable when it is unset', () => {
    expect(() => interpolateEnv({ clusters: { k: { password: '${PW}' } } }, {}, (p) => `file: key "${p}"`)).toThrow(
      'file: key "clusters.k.password": environment variable PW is not set',
    )
  })
})

describe('redaction', () => {
  it('hides values of secret-looking keys at any depth, and nothing else', () => {
    expect(redactSecrets({ user: 'u', password: 'p', nested: [{ saslPassword: 's', apiKey: 'k', token: 't', host: 'h' }] })).toEqual({
      user: 'u',
      password: REDACTED,
      nested: [{ saslPassword: REDACTED, apiKey: REDACTED, token: REDACTED, host: 'h' }],
    })
  })
})

describe('.walrc.example', () => {
  const example = parseYaml(readFileSync(join(ROOT, '.walrc.example'), 'utf8'))

  it('is a valid configuration', () => {
    expect(() => validateConfig(example, '.walrc.example', { TEAM: 'x' })).not.toThrow()
    expect(() => resolveConfig(validateConfig({ namespaces: { a: { targets: { r: { type: 'kafka', cluster: 'nope', topic: 't' } } } } }, '/etc/w.json', {}), '/etc/w.json', {})).toThrow(
      /\/etc\/w\.json: key "namespaces\.a\.targets\.r\.cluster": cluster "nope" is not declared under clusters\.kafka/,
    )
    const config = resolveConfig(validateConfig(example, '/etc/wal/.walrc', {}), '/etc/wal/.walrc', {})
    expect(namespaceSettings(config, 'orders').targets.map((t) => [t.name, t.type, t.retry.maxAttempts, t.ratePerSec])).toEqual([
      ['store', 'kv', 5, null],
      ['api', 'http', 5, 100],
      ['audit', 'file', 5, null],
      ['replica', 'kafka', 5, null],
      ['outbox', 'sqs', 5, null],
      ['db', 'cassandra', 5, 2000],
    ])
    expect(namespaceSettings(config, 'orders').ratePerSec).toBe(500)
    const jobs = namespaceSettings(config, 'jobs')
    expect([jobs.backend, jobs.partitions, jobs.sqs?.queue, jobs.sqs?.fifo, jobs.sqs?.maxReceiveCount, jobs.sqs?.cluster.endpoint]).toEqual(['sqs', 4, 'jobs', true, 20, 'http://127.0.0.1:9324'])
  })

  it('documents every key of the schema', () => {
    type Node = { entries?: Record<string, Node>; wrapped?: Node; value?: Node; options?: Node[] }
    const keys = (schema: Node, prefix: string): string[] => {
      const inner = schema.wrapped ?? schema
      if (inner.entries) return Object.entries(inner.entries).flatMap(([k, v]) => [`${prefix}${k}`, ...keys(v, `${prefix}${k}.`)])
      if (inner.value) return keys(inner.value, `${prefix}*.`)
      if (inner.options) return inner.options.flatMap((o) => keys(o, prefix))
      return []
    }
    const text = readFileSync(join(ROOT, '.walrc.example'), 'utf8')
    for (const key of keys(ConfigSchema as unknown as Node, '')) {
      const leaf = key.split('.').at(-1)!
      if (leaf === '*') continue
      expect(text, `.walrc.example mentions ${key}`).toMatch(new RegExp(`^\\s*${leaf}:`, 'm'))
    }
  })
})

describe('SQS namespaces', () => {
  const sqsFile = (ns: Record<string, unknown>, cluster: Record<string, unknown> = { region: 'us-east-1' }) =>
    resolveConfig(validateConfig({ clusters: { sqs: { main: cluster } }, namespaces: { jobs: { backend: 'sqs', cluster: 'main', ...ns } } }, '/etc/w.json', {}), '/etc/w.json', {})

  it('takes shards as partitions, and defaults the queue, receive count and delays', () => {
    const jobs = namespaceSettings(sqsFile({ shards: 3, retry: { maxAttempts: 4 } }), 'jobs')
    expect(jobs.partitions).toBe(3)
    expect(jobs.sqs).toMatchObject({ queue: 'jobs', fifo: false, shards: 3, maxReceiveCount: 14, visibilityTimeoutSeconds: 30, maxNativeDelaySeconds: 900 })
    expect(jobs.sqs!.cluster).toMatchObject({ region: 'us-east-1', endpoint: null, profile: null, credentials: null })
  })

  it('refuses keys of other backends, half a key pair, and an undeclared cluster, saying what to do', () => {
    expect(() => sqsFile({ partitions: 4 })).toThrow(/"namespaces\.jobs\.partitions" does not apply to SQS namespaces/)
    expect(() => sqsFile({}, { region: 'r', accessKeyId: 'a' })).toThrow(/needs both accessKeyId and secretAccessKey/)
    expect(() => resolveConfig(validateConfig({ namespaces: { a: { queue: 'q' } } }, '/etc/w.json', {}), '/etc/w.json', {})).toThrow(/"namespaces\.a\.queue" applies to SQS namespaces only/)
    expect(() => resolveConfig(validateConfig({ namespaces: { a: { backend: 'sqs', cluster: 'nope' } } }, '/etc/w.json', {}), '/etc/w.json', {})).toThrow(/cluster "nope" is not declared under clusters\.sqs/)
    expect(configError({ namespaces: { a: { backend: 'sqs', shards: 0 } } }).message).toMatch(/from 1 to 64 shard queues/)
  })
})

describe('rates', () => {
  it('reads "R/s", "R/m" and "R/h" as per second, and refuses zero', async () => {
    const { parseRate, rateFlag } = await import('../../src/lib/config/load.js')
    expect([parseRate('100/s'), parseRate('6000/m'), parseRate('36000/h'), parseRate(5)]).toEqual([100, 100, 10, 5])
    expect(rateFlag(undefined)).toBeNull()
    expect(rateFlag('20/s')).toBe(20)
    expect(() => rateFlag('0/s')).toThrow(/--rate "0\/s" is not a rate above zero/)
    expect(() => rateFlag('fast')).toThrow(UsageError)
    expect(configError({ namespaces: { a: { rate: '0/m' } } }).message).toMatch(/key "namespaces\.a\.rate": expected a rate above zero/)
  })
})

describe('config search without a file', () => {
  /** A project tree in a fresh temp dir: root/project/sub, with XDG_CONFIG_HOME at root/xdg. */
  function tree(): { root: string; project: string; sub: string; xdg: string; done: () => void } {
    const root = mkdtempSync(join(tmpdir(), 'wal-search-test-'))
    const project = join(root, 'project')
    const sub = join(project, 'sub')
    mkdirSync(sub, { recursive: true })
    mkdirSync(join(root, 'xdg'))
    return { root, project, sub, xdg: join(root, 'xdg'), done: () => rmSync(root, { recursive: true, force: true }) }
  }

  it('knows there is nothing to load only when every place the search looks is empty', () => {
    const t = tree()
    const saved = process.env.XDG_CONFIG_HOME
    process.env.XDG_CONFIG_HOME = t.xdg
    try {
      const might = (): boolean => mightHaveConfig(t.sub, t.project)
      expect(might()).toBe(false)
      // A package.json without a "wal" (or "cosmiconfig") key is not a config.
      writeFileSync(join(t.project, 'package.json'), '{"name":"app"}')
      expect(might()).toBe(false)
      const places: [string, string][] = [
        [join(t.project, 'package.json'), '{"name":"app","wal":{}}'],
        [join(t.project, '.walrc'), 'namespaces: {}'],
        [join(t.sub, '.walrc.yml'), 'namespaces: {}'],
        [join(t.project, 'wal.config.mjs'), 'export default {}'],
        [join(t.project, '.config', 'walrc.json'), '{}'],
        [join(t.xdg, 'wal', 'config.yaml'), 'namespaces: {}'],
        [join(t.project, 'package.json'), '{not json'],
      ]
      for (const [file, text] of places) {
        mkdirSync(dirname(file), { recursive: true })
        const before = existsSync(file) ? readFileSync(file, 'utf8') : null
        writeFileSync(file, text)
        expect(might(), file).toBe(true)
        if (before === null) rmSync(file)
        else writeFileSync(file, before)
        expect(might(), `${file} removed`).toBe(false)
      }
      // Above the stop directory, nothing counts; nor do cosmiconfig's meta configs.
      writeFileSync(join(t.root, '.walrc.yaml'), 'namespaces: {}')
      writeFileSync(join(t.sub, 'package.yaml'), 'cosmiconfig: {}')
      mkdirSync(join(t.sub, '.config'))
      writeFileSync(join(t.sub, '.config', 'config.yaml'), 'searchPlaces: []')
      expect(might()).toBe(false)
    } finally {
      if (saved === undefined) delete process.env.XDG_CONFIG_HOME
      else process.env.XDG_CONFIG_HOME = saved
      t.done()
    }
  })
})

describe('config search', () => {
  it('finds the first place in cosmiconfig\'s order, skips blank files and package.json without "wal", and never runs a meta config', async () => {
    const root = mkdtempSync(join(tmpdir(), 'wal-find-test-'))
    const saved = process.env.XDG_CONFIG_HOME
    process.env.XDG_CONFIG_HOME = join(root, 'xdg')
    try {
      const project = join(root, 'project')
      mkdirSync(join(project, '.git'), { recursive: true })
      mkdirSync(join(project, '.config'))
      const marker = join(root, 'ran')
      // cosmiconfig's meta config places: read (and a JS one run) on every search; wal looks at none of them.
      writeFileSync(join(project, '.config', 'config.js'), `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x'); module.exports = { searchPlaces: ['evil.yaml'] }`)
      writeFileSync(join(project, 'evil.yaml'), 'namespaces:\n  evil: {}\n')
      expect(await findConfig(undefined, project)).toBeNull()
      writeFileSync(join(project, 'package.json'), '{"name":"app","cosmiconfig":{"searchPlaces":["evil.yaml"]}}')
      expect(await findConfig(undefined, project)).toBeNull()
      writeFileSync(join(project, '.walrc.yaml'), '  \n')
      writeFileSync(join(project, 'wal.config.cjs'), 'module.exports = { namespaces: { late: {} } }')
      writeFileSync(join(project, '.config', 'walrc.json'), '{"namespaces":{"json":{}}}')
      expect(await findConfig(undefined, project)).toEqual({ filepath: join(project, '.config', 'walrc.json'), config: { namespaces: { json: {} } } })
      writeFileSync(join(project, 'package.json'), '{"name":"app","wal":{"namespaces":{"pkg":{}}}}')
      expect(await findConfig(undefined, project)).toEqual({ filepath: join(project, 'package.json'), config: { namespaces: { pkg: {} } } })
      // Explicit: a blank file is empty settings; the global directory comes last.
      expect(await findConfig(join(project, '.walrc.yaml'), project)).toEqual({ filepath: join(project, '.walrc.yaml'), config: undefined, isEmpty: true })
      rmSync(join(project, 'package.json'))
      rmSync(join(project, '.config'), { recursive: true })
      rmSync(join(project, 'wal.config.cjs'))
      mkdirSync(join(root, 'xdg', 'wal'), { recursive: true })
      writeFileSync(join(root, 'xdg', 'wal', 'config'), 'namespaces:\n  global: {}\n')
      expect(await findConfig(undefined, project)).toEqual({ filepath: join(root, 'xdg', 'wal', 'config'), config: { namespaces: { global: {} } } })
      expect(existsSync(marker)).toBe(false)
    } finally {
      if (saved === undefined) delete process.env.XDG_CONFIG_HOME
      else process.env.XDG_CONFIG_HOME = saved
      rmSync(root, { recursive: true, force: true })
    }
  })
})
