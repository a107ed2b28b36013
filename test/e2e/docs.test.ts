/**
 * The docs say only what is true: every `wal` command and flag they mention exists (checked against the
 * oclif manifest of this build), and every code block marked ```sh runnable runs, as a user would paste
 * it, with `wal` on the PATH.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { makeSandbox, ROOT, WAL_SHELL, type Sandbox } from '../helpers/wal.js'

interface ManifestCommand {
  flags: Record<string, { char?: string }>
}
const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as { commands: Record<string, ManifestCommand> }
const ids = Object.keys(manifest.commands)
const topics = new Set(ids.filter((id) => id.includes(':')).map((id) => id.split(':')[0]!))

const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8')

interface Block {
  lang: string
  body: string
}

function fencedBlocks(text: string): Block[] {
  const blocks: Block[] = []
  const pattern = /^```([^\n]*)\n([\s\S]*?)^```$/gm
  for (const match of text.matchAll(pattern)) blocks.push({ lang: match[1]!.trim(), body: match[2]! })
  return blocks
}

/** The code of a file: shell-like fenced blocks (comments dropped) and inline code spans. */
function codeLines(text: string): string[] {
  const lines: string[] = []
  for (const block of fencedBlocks(text)) {
    const lang = block.lang.split(/\s+/)[0]!
    if (!['', 'sh', 'bash', 'console', 'shell'].includes(lang)) continue
    for (const line of block.body.split('\n')) lines.push(line.replace(/(^|\s)#.*$/, ''))
  }
  const prose = text.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '')
  for (const match of prose.matchAll(/`([^`\n]+)`/g)) lines.push(match[1]!)
  return lines
}

interface Mention {
  file: string
  text: string
  problem: string
}

/** Each `wal …` in a line: its command (longest known id) and the flags that follow, checked. */
function check(file: string, line: string): Mention[] {
  const problems: Mention[] = []
  for (const match of line.matchAll(/(?:^|[\s;&(|$]|\$\()wal((?:\s+\S+)*)/g)) {
    const tokens = match[1]!.trim().split(/\s+/).filter(Boolean)
    const words: string[] = []
    for (const token of tokens) {
      if (!/^[a-z][a-z-]*$/.test(token)) break
      words.push(token)
    }
    let id: string | undefined
    for (let n = words.length; n > 0 && id === undefined; n--) {
      const candidate = words.slice(0, n).join(':')
      if (manifest.commands[candidate]) id = candidate
    }
    if (id === undefined) {
      if (words.length === 0 || (words.length === 1 && topics.has(words[0]!))) {
        if (words.length === 0) continue
      }
      if (words.length > 0 && !(topics.has(words[0]!) && words.length === 1)) {
        if (!topics.has(words[0]!) || !/^[a-z]+$/.test(words[1] ?? '')) problems.push({ file, text: match[0].trim(), problem: `no command "${words.join(' ')}"` })
        else problems.push({ file, text: match[0].trim(), problem: `no command "${words.slice(0, 2).join(' ')}"` })
      }
      continue
    }
    const flags = manifest.commands[id]!.flags
    const chars = new Set(Object.values(flags).map((f) => f.char).filter(Boolean))
    for (const raw of tokens.slice(id.split(':').length)) {
      if (raw === '|' || raw === '&&' || raw === ';' || raw.startsWith('>') || raw.startsWith('<') || raw === ')') break
      const token = raw.replace(/^[[(]+/, '').replace(/[\])…,.:]+$/, '').split('=')[0]!
      const long = /^--([a-z][a-z0-9-]*)$/.exec(token)
      const short = /^-([a-zA-Z])$/.exec(token)
      if (long && !(long[1]! in flags) && !['help', 'version', 'no-auth'].includes(long[1]!)) {
        problems.push({ file, text: match[0].trim(), problem: `wal ${id.replaceAll(':', ' ')} has no flag --${long[1]}` })
      }
      if (short && !chars.has(short[1]!) && short[1] !== 'h') {
        problems.push({ file, text: match[0].trim(), problem: `wal ${id.replaceAll(':', ' ')} has no flag -${short[1]}` })
      }
    }
  }
  return problems
}

describe('the docs', () => {
  it('mention only commands and flags that exist', () => {
    const problems = files.flatMap((file) => codeLines(read(file)).flatMap((line) => check(file, line)))
    expect(problems).toEqual([])
  })

  it('catch a command or flag that does not exist (the check itself)', () => {
    expect(check('x.md', 'wal prodcue -k a')).toHaveLength(1)
    expect(check('x.md', 'wal dlq lss')).toHaveLength(1)
    expect(check('x.md', 'cat x | wal produce --nmespace a')).toHaveLength(1)
    expect(check('x.md', 'wal tail -z')).toHaveLength(1)
    expect(check('x.md', 'wal consume -n orders --until-idle | wc -l --bytes')).toEqual([])
    expect(check('x.md', '~/.local/state/wal/kv/default.db and wal.config.js')).toEqual([])
  })

  it('link from the README to every page in docs/, and to no page that is missing', () => {
    const readme = read('README.md')
    for (const file of files.filter((f) => f !== 'README.md')) expect(readme).toContain(`](${file})`)
    for (const file of files) {
      for (const match of read(file).matchAll(/\]\(([^)#\s]+\.(?:md|yaml|example))(?:#[^)]*)?\)/g)) {
        const target = join(ROOT, file.startsWith('docs/') ? 'docs' : '', match[1]!)
        expect(() => readFileSync(target), `${file} links to ${match[1]}`).not.toThrow()
      }
    }
  })
})

describe('runnable code blocks', () => {
  let wal: Sandbox
  beforeEach(() => {
    wal = makeSandbox()
  })
  afterEach(() => wal.cleanup())

  const runnable = files.flatMap((file) => fencedBlocks(read(file)).filter((b) => /^(sh|bash)\s+runnable\b/.test(b.lang)).map((b) => ({ file, body: b.body })))

  it('exist (the README\'s quick start is one)', () => {
    expect(runnable.some((b) => b.file === 'README.md')).toBe(true)
  })

  it.each(runnable.map((b, i) => [`${b.file} #${i + 1}`, b] as const))('%s runs', (_name, block) => {
    writeFileSync(join(wal.dir, 'wal'), `#!/bin/sh\nexec ${WAL_SHELL} "$@"\n`, { mode: 0o755 })
    const result = spawnSync('bash', ['-euo', 'pipefail', '-c', block.body], { cwd: wal.cwd, env: { ...wal.env, PATH: `${wal.dir}:${wal.env.PATH}` }, encoding: 'utf8' })
    expect(result.stderr).not.toMatch(/unknown command|Nonexistent flag/)
    expect(result.status, result.stderr).toBe(0)
  })
})
