import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { kvItems } from '../helpers/state.js'
import { jsonLines, makeSandbox, ROOT, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

const put = (id: number): string => JSON.stringify({ op: 'put', table: 'users', key: { id }, item: { id } })

describe('contexts: named settings in one config file, as kubectl and kafkactl have', () => {
  const config = `contexts:
  blue:
    stateDir: ./state-blue
    defaultNamespace: orders
  green:
    stateDir: ./state-green
namespaces:
  orders: {}
`

  it('keeps each context in its own state directory: --context, WAL_CONTEXT, then wal config use-context', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), config)
    expect((await wal.run(['produce', '--context', 'blue', '-k', 'a', '-p', put(1)])).code).toBe(0)
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'b', '-p', put(2)], { env: { WAL_CONTEXT: 'green' } })).code).toBe(0)
    const blue = await wal.run(['tail', '--context', 'blue', '--json'])
    const green = await wal.run(['tail', '-n', 'orders', '--context', 'green', '--json'])
    expect(jsonLines(blue.stdout).map((e) => e.key)).toEqual(['a'])
    expect(jsonLines(green.stdout).map((e) => e.key)).toEqual(['b'])
    expect(existsSync(join(wal.cwd, 'state-blue', 'embedded', 'orders.db'))).toBe(true)
    expect(existsSync(join(wal.cwd, 'state-green', 'embedded', 'orders.db'))).toBe(true)

    // Switching: remembered for this config file, 0600 under $WAL_HOME; the flag and WAL_CONTEXT still win.
    const used = await wal.run(['config', 'use-context', 'green'])
    expect(used.code).toBe(0)
    expect(used.stdout).toContain('now using context "green"')
    expect(statSync(join(wal.stateDir, 'contexts.json')).mode & 0o777).toBe(0o600)
    expect(jsonLines((await wal.run(['tail', '-n', 'orders', '--json'])).stdout).map((e) => e.key)).toEqual(['b'])
    expect(jsonLines((await wal.run(['tail', '--json'], { env: { WAL_CONTEXT: 'blue' } })).stdout).map((e) => e.key)).toEqual(['a'])
    const listed = await wal.run(['config', 'get-contexts', '--json'])
    expect(JSON.parse(listed.stdout)).toMatchObject({
      current: 'green',
      source: 'use-context',
      contexts: [
        { name: 'blue', current: false, stateDir: join(wal.cwd, 'state-blue'), defaultNamespace: 'orders' },
        { name: 'green', current: true, stateDir: join(wal.cwd, 'state-green'), defaultNamespace: 'default' },
      ],
    })
    expect((await wal.run(['config', 'get-contexts'])).stdout).toMatch(/^\*\s+green\s/m)
  })

  it('refuses a context the file does not declare, with the closest name (exit 2), and one that disappeared (exit 3)', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), config)
    const typo = await wal.run(['ns', 'ls', '--context', 'gren'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain('context "gren" (--context) is not declared')
    expect(typo.stderr).toContain('did you mean "green"?')
    const fromEnv = await wal.run(['ns', 'ls'], { env: { WAL_CONTEXT: 'red' } })
    expect(fromEnv.code).toBe(2)
    expect(fromEnv.stderr).toContain('(WAL_CONTEXT)')
    expect((await wal.run(['config', 'use-context', 'purple'])).code).toBe(2)
    expect(existsSync(join(wal.stateDir, 'contexts.json'))).toBe(false)
    expect((await wal.run(['config', 'use-context', 'blue'])).code).toBe(0)
    writeFileSync(join(wal.cwd, '.walrc.yaml'), config.replace('  blue:\n    stateDir: ./state-blue\n    defaultNamespace: orders\n', ''))
    const gone = await wal.run(['ns', 'ls'])
    expect(gone.code).toBe(3)
    expect(gone.stderr).toContain('"blue" (from wal config use-context), is no longer declared')
    expect(gone.stderr).toContain('wal config use-context NAME')
  })

  it('checks a context before switching to it: one with an error is not chosen (exit 3)', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), config.replace('contexts:\n', 'contexts:\n  broken:\n    defaults: { partitions: 0 }\n'))
    const result = await wal.run(['config', 'use-context', 'broken'])
    expect(result.code).toBe(3)
    expect(result.stderr).toContain('(context "broken"): key "defaults.partitions"')
    expect(existsSync(join(wal.stateDir, 'contexts.json'))).toBe(false)
    // The others are still listed, the broken one with what is wrong.
    const listed = JSON.parse((await wal.run(['config', 'get-contexts', '--json'])).stdout) as { contexts: Array<{ name: string; error?: string }> }
    expect(listed.contexts.map((c) => c.name)).toEqual(['broken', 'blue', 'green'])
    expect(listed.contexts[0]!.error).toContain('defaults.partitions')
    expect(listed.contexts[1]!.error).toBeUndefined()
  })

  it('refuses a context name that could hide control characters (exit 3)', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'contexts:\n  "a\\x1b[31mb": {}\n')
    const result = await wal.run(['config', 'get-contexts'])
    expect(result.code).toBe(3)
    expect(result.stderr).toContain('is not a valid context name')
    expect(result.stderr).not.toContain('\x1b')
  })
})

describe('the default namespace', () => {
  it('is the config\'s defaultNamespace, then WAL_NAMESPACE over it, then -n over both', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'defaultNamespace: orders\nnamespaces:\n  orders: {}\n  emails: {}\n')
    expect((await wal.run(['produce', '-k', 'o', '-p', put(1)])).code).toBe(0)
    expect((await wal.run(['produce', '-k', 'e', '-p', put(2)], { env: { WAL_NAMESPACE: 'emails' } })).code).toBe(0)
    expect((await wal.run(['produce', '-n', 'orders', '-k', 'o2', '-p', put(3)], { env: { WAL_NAMESPACE: 'emails' } })).code).toBe(0)
    // Lines that name no namespace go to the default one; a line's own namespace is kept.
    const lines = `${JSON.stringify({ key: 'line', payload: {} })}\n${JSON.stringify({ namespace: 'orders', key: 'own', payload: {} })}\n`
    expect((await wal.run(['produce'], { input: lines, env: { WAL_NAMESPACE: 'emails' } })).code).toBe(0)
    expect(jsonLines((await wal.run(['tail', '--json'])).stdout).map((e) => e.key)).toEqual(expect.arrayContaining(['o', 'o2', 'own']))
    expect(jsonLines((await wal.run(['tail', '--json'])).stdout)).toHaveLength(3)
    expect(jsonLines((await wal.run(['tail', '--json'], { env: { WAL_NAMESPACE: 'emails' } })).stdout).map((e) => e.key).sort()).toEqual(['e', 'line'])
    const shown = await wal.run(['ns', 'show', '--json'], { env: { WAL_NAMESPACE: 'emails' } })
    expect(JSON.parse(shown.stdout)).toMatchObject({ name: 'emails' })
    // A WAL_NAMESPACE the config does not declare is refused like -n would be.
    const unknown = await wal.run(['tail'], { env: { WAL_NAMESPACE: 'nope' } })
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('namespace "nope" is not declared')
  })

  it('is what every command with a namespace flag falls back to: no command defaults -n to "default" itself', async () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as { commands: Record<string, { flags: Record<string, { default?: unknown }> }> }
    const fixed = Object.entries(manifest.commands).filter(([, c]) => c.flags.namespace?.default !== undefined).map(([id]) => id)
    expect(fixed).toEqual([])
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'defaultNamespace: orders\nnamespaces:\n  orders: {}\n')
    expect((await wal.run(['produce', '-k', 'o', '-p', put(1)])).code).toBe(0)
    const offsets = await wal.run(['offsets', 'show', '--json'])
    expect(offsets.code, offsets.stderr).toBe(0)
    expect(JSON.parse(offsets.stdout)).toMatchObject({ namespace: 'orders' })
    const skips = await wal.run(['skip', '--list', '--json'])
    expect(skips.code, skips.stderr).toBe(0)
    expect(JSON.parse(skips.stdout)).toMatchObject({ namespace: 'orders' })
  })

  it('applies a declared namespace that names no targets to the embedded kv store; `targets: []` means none, and validate warns', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'namespaces:\n  emails: {}\n  quiet:\n    targets: []\n')
    expect((await wal.run(['produce', '-n', 'emails', '-k', 'u1', '-p', put(1)])).code).toBe(0)
    const consumed = await wal.run(['consume', '-n', 'emails', '--until-idle'])
    expect(consumed.code).toBe(0)
    expect(kvItems(wal.stateDir, 'emails')).toHaveLength(1)
    const validated = await wal.run(['config', 'validate'])
    expect(validated.code).toBe(0)
    expect(validated.stdout).toContain('warning: namespace "quiet" has no targets')
    expect(validated.stdout).not.toContain('namespace "emails" has no targets')
    const json = JSON.parse((await wal.run(['config', 'validate', '--json'])).stdout) as { warnings: string[] }
    expect(json.warnings).toHaveLength(1)
  })
})

describe('config validate', () => {
  it('checks every context, not only the one in use, and warns about a default namespace nothing declares', async () => {
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'namespaces:\n  orders: {}\ncontexts:\n  prod:\n    defaultNamspace: orders\n')
    const broken = await wal.run(['config', 'validate'])
    expect(broken.code).toBe(3)
    expect(broken.stderr).toMatch(/context "prod": .*unknown key "defaultNamspace"/)
    writeFileSync(join(wal.cwd, '.walrc.yaml'), 'defaultNamespace: ordrs\nnamespaces:\n  orders: {}\n')
    const warned = await wal.run(['config', 'validate'])
    expect(warned.code).toBe(0)
    expect(warned.stdout).toContain('warning: the default namespace "ordrs" is not declared')
  })

  it('refuses targets that forward a namespace back into its own log (A -> B -> A): validate, consume and the daemon exit 3', async () => {
    // Nothing is reached: the loop is found from the config, before any broker is asked.
    writeFileSync(
      join(wal.cwd, '.walrc.yaml'),
      `clusters:
  kafka:
    main: { brokers: ['127.0.0.1:1'] }
namespaces:
  a:
    backend: kafka
    cluster: main
    targets:
      toB: { type: kafka, cluster: main, topic: wal.b }
      out: { type: file, path: ./out.ndjson }
  b:
    backend: kafka
    cluster: main
    topic: wal.b
    targets:
      toA: { type: kafka, cluster: main, topic: a }
`,
    )
    const loop = /forwarding loop: namespace "a" target "toB" writes into topic "wal\.b" of Kafka cluster "main", namespace "b" reads it, namespace "b" target "toA" writes into topic "a" of Kafka cluster "main", which namespace "a" reads/
    const validated = await wal.run(['config', 'validate'])
    expect(validated.code).toBe(3)
    expect(validated.stderr).toMatch(loop)
    const consumed = await wal.run(['consume', '-n', 'a', '--until-idle'])
    expect(consumed.code).toBe(3)
    expect(consumed.stderr).toMatch(loop)
    const json = await wal.run(['consume', '-n', 'b', '--until-idle', '--json'])
    expect(json.code).toBe(3)
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'WAL_FORWARD_LOOP' } })
    const daemon = await wal.run(['daemon', 'run', '--port', '0'])
    expect(daemon.code).toBe(3)
    expect(daemon.stderr + daemon.stdout).toMatch(/forwarding loop/)
  })
})

describe('the example config', () => {
  it('loads as it is with -c .walrc.example, and leaves the state directory to $WAL_HOME', async () => {
    copyFileSync(join(ROOT, '.walrc.example'), join(wal.cwd, '.walrc.example'))
    const validated = await wal.run(['config', 'validate', '-c', '.walrc.example'])
    expect(validated.stderr).toBe('')
    expect(validated.code).toBe(0)
    expect(validated.stdout).toMatch(/valid \(\d+ namespaces/)
    const shown = JSON.parse((await wal.run(['config', 'show', '-c', '.walrc.example', '--json'])).stdout) as { stateDir: string }
    expect(shown.stateDir).toBe(wal.stateDir)
    const contexts = await wal.run(['config', 'get-contexts', '-c', '.walrc.example', '--json'])
    expect(contexts.code).toBe(0)
    expect((JSON.parse(contexts.stdout) as { contexts: unknown[] }).contexts.length).toBeGreaterThan(0)
  })
})
