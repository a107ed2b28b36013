import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { makeSandbox, ROOT, WAL_SHELL, type Sandbox } from '../helpers/wal.js'

let wal: Sandbox
beforeEach(() => {
  wal = makeSandbox()
})
afterEach(() => wal.cleanup())

const has = (shell: string): boolean => spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0

describe('help, as oclif users expect it', () => {
  it('shows the same command help for `wal help produce`, `wal produce -h` and `wal produce --help`', async () => {
    const viaHelp = await wal.run(['help', 'produce'])
    const viaShort = await wal.run(['produce', '-h'])
    const viaLong = await wal.run(['produce', '--help'])
    expect(viaHelp.code).toBe(0)
    expect(viaHelp.stdout).toMatch(/--idempotency-key/)
    expect(viaShort).toMatchObject({ code: 0, stdout: viaHelp.stdout })
    expect(viaLong).toMatchObject({ code: 0, stdout: viaHelp.stdout })
    const topLevel = await wal.run(['-h'])
    expect(topLevel.code).toBe(0)
    for (const command of ['produce', 'consume', 'help', 'version', 'autocomplete']) expect(topLevel.stdout).toContain(command)
    expect((await wal.run(['help', 'dlq', 'replay'])).stdout).toMatch(/--to-namespace/)
  })

  it('suggests the command a typo was meant to be, exit 2, for commands, subcommands and `wal help`', async () => {
    const typo = await wal.run(['prodcue', '-k', 'a', '-p', '{}'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain('unknown command "prodcue"')
    expect(typo.stderr).toContain('did you mean: wal produce')
    expect(typo.stdout).toBe('')
    const sub = await wal.run(['dlq', 'replya'])
    expect(sub.code).toBe(2)
    expect(sub.stderr).toContain('did you mean: wal dlq replay')
    const help = await wal.run(['help', 'consmue'])
    expect(help.code).toBe(2)
    expect(help.stderr).toContain('did you mean: wal help consume')
    // Nothing close: no guess, just where the list is.
    const far = await wal.run(['zzzzzzzz'])
    expect(far.code).toBe(2)
    expect(far.stderr).not.toContain('did you mean')
    expect(far.stderr).toContain('wal help')
  })

  it('suggests the flag a typo was meant to be, exit 2, and writes nothing', async () => {
    const typo = await wal.run(['produce', '--namepsace', 'orders', '-p', '{}'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain('did you mean --namespace instead of --namepsace?')
    const json = await wal.run(['tail', '--jsno'])
    expect(json.code).toBe(2)
    expect(json.stderr).toContain('did you mean --json')
  })

  it('takes --json on every command that prints data: the manifest says so, and daemon logs accepts it', async () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as { commands: Record<string, { flags: Record<string, unknown> }> }
    const without = Object.entries(manifest.commands).filter(([, c]) => !('json' in c.flags)).map(([id]) => id)
    expect(without.sort()).toEqual(['autocomplete', 'help'])
    const logs = await wal.run(['daemon', 'logs', '--json'])
    expect(logs.stderr).not.toContain('Nonexistent flag')
    expect(logs.code).toBe(7)
    expect(logs.stderr).toContain('no daemon log')
  })

  it('prints its version as text and as JSON with `wal version`, and with --version', async () => {
    const text = await wal.run(['version'])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^wal \d+\.\d+\.\d+ \(node \d+\.\d+\.\d+, linux-x64, (node|binary)\)\n$/)
    const json = await wal.run(['version', '--json'])
    expect(JSON.parse(json.stdout)).toMatchObject({ version: expect.stringMatching(/^\d+\.\d+\.\d+$/), node: expect.stringMatching(/^\d+\.\d+\.\d+$/), platform: 'linux', arch: 'x64' })
    const flag = await wal.run(['--version'])
    expect(flag.stdout).toContain(`wal/${(JSON.parse(json.stdout) as { version: string }).version}`)
  })
})

describe('shell completion (wal autocomplete)', () => {
  it('registers a bash completion that completes commands, subcommands, flags and the config\'s namespace and target names', async () => {
    writeFileSync(
      join(wal.cwd, '.walrc.yaml'),
      'namespaces:\n  orders:\n    targets:\n      audit: { type: file, path: ./audit.ndjson }\n  emails:\n    targets:\n      mailer: { type: http, url: "http://127.0.0.1:9/mail" }\n',
    )
    const script = await wal.run(['autocomplete', 'bash'])
    expect(script.code).toBe(0)
    writeFileSync(join(wal.dir, 'wal.bash'), script.stdout)
    // `wal` on the PATH of the shell is this build, as a user's would be after installing.
    writeFileSync(join(wal.dir, 'wal'), `#!/bin/sh\nexec ${WAL_SHELL} "$@"\n`, { mode: 0o755 })
    const complete = (words: string[]): string[] => {
      const program = `source ${join(wal.dir, 'wal.bash')}
complete -p wal
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _wal_completions
printf '%s\\n' "\${COMPREPLY[@]}"`
      const result = spawnSync('bash', ['-c', program], { cwd: wal.cwd, env: { ...wal.env, PATH: `${wal.dir}:${wal.env.PATH}` }, encoding: 'utf8' })
      expect(result.status).toBe(0)
      const [registered, ...replies] = result.stdout.trim().split('\n')
      expect(registered).toBe('complete -o default -F _wal_completions wal')
      return replies.filter((r) => r !== '')
    }
    expect(complete(['wal', 'pro'])).toEqual(['produce'])
    expect(complete(['wal', 'dlq', 're'])).toEqual(['replay'])
    expect(complete(['wal', 'produce', '--idem'])).toEqual(['--idempotency-key'])
    expect(complete(['wal', 'consume', '-n', '']).sort()).toEqual(['emails', 'orders'])
    expect(complete(['wal', 'consume', '-n', 'orders', '--target', '']).sort()).toEqual(['audit'])
    expect(complete(['wal', 'consume', '--target', '']).sort()).toEqual(['audit', 'mailer'])
    expect(complete(['wal', 'consume', '--con']).sort()).toEqual(['--concurrency', '--config', '--context'])
    expect(complete(['wal', 'ns', 'show', 'or'])).toEqual(['orders'])
  })

  it.runIf(has('zsh'))('prints a zsh script that zsh parses (zsh -n)', async () => {
    const script = await wal.run(['autocomplete', 'zsh'])
    writeFileSync(join(wal.dir, 'wal.zsh'), script.stdout)
    const check = spawnSync('zsh', ['-n', join(wal.dir, 'wal.zsh')], { encoding: 'utf8' })
    expect(check.stderr).toBe('')
    expect(check.status).toBe(0)
    expect(script.stdout).toContain('bashcompinit')
    // Registered, and answering as zsh's bash emulation calls it (sh emulation: arrays from 0).
    const program = `source ${join(wal.dir, 'wal.zsh')}
complete -p wal
f() { emulate -L sh; COMP_WORDS=(wal dlq re); COMP_CWORD=2; _wal_completions; printf '%s\\n' "\${COMPREPLY[@]}"; }
f`
    const used = spawnSync('zsh', ['-c', program], { encoding: 'utf8', env: { ...wal.env } })
    expect(used.status, used.stderr).toBe(0)
    expect(used.stdout).toContain('complete -o default -F _wal_completions wal')
    expect(used.stdout.split('\n')).toContain('replay')
  })

  it.runIf(has('fish'))('prints a fish script that fish parses (fish -n) and that completes commands', async () => {
    const script = await wal.run(['autocomplete', 'fish'])
    writeFileSync(join(wal.dir, 'wal.fish'), script.stdout)
    const check = spawnSync('fish', ['-n', join(wal.dir, 'wal.fish')], { encoding: 'utf8' })
    expect(check.stderr).toBe('')
    expect(check.status).toBe(0)
    const completed = spawnSync('fish', ['-c', `source ${join(wal.dir, 'wal.fish')}; complete -C 'wal dlq rep'`], { encoding: 'utf8', env: { ...wal.env } })
    expect(completed.stdout).toMatch(/^replay\t/m)
  })

  it('refuses a shell it has no script for, exit 2', async () => {
    const result = await wal.run(['autocomplete', 'powershell'])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/bash, zsh, fish/)
  })
})
