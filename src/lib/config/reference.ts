/**
 * The configuration reference (docs/config-reference.md), generated from the schema that validates
 * config files, so it cannot drift from what `wal` accepts: `npm run docs:config` writes it, and a unit
 * test fails when the file is not what the schema gives.
 */
import type * as v from 'valibot'

import { ConfigSchema } from './schema.js'

type Node = v.GenericSchema & {
  type: string
  message?: unknown
  wrapped?: Node
  default?: unknown
  entries?: Record<string, Node>
  key?: Node | string
  value?: Node
  item?: Node
  options?: Array<Node | string | number>
  literal?: unknown
  pipe?: Array<{ kind: string; type: string; requirement?: unknown; message?: unknown }>
}

interface Row {
  key: string
  type: string
  rule: string
}

const text = (message: unknown): string => (typeof message === 'string' ? message : '')

/** The checks of a pipe (ranges, patterns), as their messages say them. */
function rules(node: Node): string {
  const said = new Set<string>()
  for (const action of node.pipe?.slice(1) ?? []) {
    if (action.kind !== 'validation') continue
    const message = text(action.message)
    if (message) said.add(message)
    else if (action.type === 'min_value' || action.type === 'min_length') said.add(`at least ${String(action.requirement)}`)
    else if (action.type === 'max_value' || action.type === 'max_length') said.add(`at most ${String(action.requirement)}`)
  }
  return [...said].join('; ')
}

function typeOf(node: Node): string {
  switch (node.type) {
    case 'optional':
      return typeOf(node.wrapped!)
    case 'picklist':
      return (node.options as string[]).map((o) => `\`${o}\``).join(' | ')
    case 'literal':
      return `\`${String(node.literal)}\``
    case 'array':
      return `list of ${typeOf(node.item!)}`
    case 'union':
      return (node.options as Node[]).map(typeOf).join(' or ')
    case 'strict_object':
    case 'object':
      return 'object'
    case 'record':
      return 'map'
    case 'variant':
      return 'object (by type)'
    default:
      return node.type
  }
}

function walk(node: Node, path: string, rows: Row[]): void {
  const inner = node.type === 'optional' ? node.wrapped! : node
  if (path !== '') rows.push({ key: path, type: typeOf(inner), rule: [text(inner.message), rules(inner)].filter(Boolean).join('; ') })
  switch (inner.type) {
    case 'strict_object':
    case 'object':
      for (const [name, child] of Object.entries(inner.entries ?? {})) walk(child, path === '' ? name : `${path}.${name}`, rows)
      break
    case 'record': {
      const key = inner.key as Node
      const placeholder = `<${(text(key.message) || 'name').replace(/^an? /, '').replace(/\s+/g, '-')}>`
      walk(inner.value!, `${path}.${placeholder}`, rows)
      break
    }
    case 'variant':
      for (const option of inner.options as Node[]) {
        const discriminator = String((option.entries?.[inner.key as string] as Node | undefined)?.literal)
        for (const [name, child] of Object.entries(option.entries ?? {})) {
          if (name === inner.key) continue
          walk(child, `${path}[${inner.key as string}=${discriminator}].${name}`, rows)
        }
      }
      break
    case 'union':
      for (const option of inner.options as Node[]) {
        if (option.type !== 'strict_object' && option.type !== 'object') continue
        for (const [name, child] of Object.entries(option.entries ?? {})) walk(child, `${path}.${name}`, rows)
      }
      break
    default:
      break
  }
}

const cell = (s: string): string => s.replaceAll('|', '\\|').replaceAll('\n', ' ')

/** The reference as Markdown. */
export function configReference(): string {
  const rows: Row[] = []
  walk(ConfigSchema as unknown as Node, '', rows)
  return `# Configuration reference

Every key a config file may hold, generated from the schema \`wal\` validates config files with
(\`src/lib/config/schema.ts\`; regenerate with \`npm run docs:config\`). What each key does, its unit and
its default: [\`.walrc.example\`](../.walrc.example), which loads as it is (\`wal config validate -c
.walrc.example\`). How files are found and combined: [Configuration](configuration.md).

\`<name>\` stands for a name you choose; \`[type=http]\` marks the keys of one kind of target. Any string
value may use \`\${VAR}\` or \`\${VAR:-fallback}\`.

| key | type | accepted |
|---|---|---|
${rows.map((r) => `| \`${cell(r.key)}\` | ${cell(r.type)} | ${cell(r.rule)} |`).join('\n')}
`
}
