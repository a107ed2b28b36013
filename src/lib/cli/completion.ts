/**
 * Shell completion scripts for `wal autocomplete bash|zsh|fish`: commands, topics and flags come from
 * the command table (the same one --help shows); namespace and target names come from the config in
 * effect where the user presses TAB, through `wal autocomplete --list namespaces|targets`.
 */
export interface CompletionCommand {
  /** "dlq:ls" */
  id: string
  summary?: string
  hidden?: boolean
  flags: Record<string, { char?: string; type: 'boolean' | 'option'; hidden?: boolean }>
}

/** Flags whose value is a namespace name, and the one whose value is a target name. */
const NAMESPACE_FLAGS = ['--namespace', '-n', '--to-namespace']
const TARGET_FLAGS = ['--target']

function visible(commands: readonly CompletionCommand[]): CompletionCommand[] {
  return commands.filter((c) => !c.hidden).sort((a, b) => a.id.localeCompare(b.id))
}

function flagWords(command: CompletionCommand): string[] {
  const words: string[] = []
  for (const [name, flag] of Object.entries(command.flags)) {
    if (flag.hidden) continue
    words.push(`--${name}`)
    if (flag.char) words.push(`-${flag.char}`)
  }
  return [...words, '--help', '-h']
}

const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`

/** bash (also used by zsh through bashcompinit). */
export function bashScript(commands: readonly CompletionCommand[]): string {
  const list = visible(commands)
  const topLevel = [...new Set(list.map((c) => c.id.split(':')[0]!))].concat(['help'])
  const topics = [...new Set(list.filter((c) => c.id.includes(':')).map((c) => c.id.split(':')[0]!))]
  const subCases = topics
    .map((t) => `    ${t}) subs=${quote(list.filter((c) => c.id.startsWith(`${t}:`)).map((c) => c.id.split(':')[1]).join(' '))} ;;`)
    .join('\n')
  const flagCases = list.map((c) => `    ${quote(c.id.replaceAll(':', ' '))}) flags=${quote(flagWords(c).join(' '))} ;;`).join('\n')
  return `# wal completion for bash. Load it with: source <(wal autocomplete bash)
# or save it: wal autocomplete bash > ~/.local/share/bash-completion/completions/wal
_wal_completions() {
  local cur prev cmd subs flags words_before
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  COMPREPLY=()
  case "$prev" in
    ${NAMESPACE_FLAGS.join('|')})
      COMPREPLY=( $(compgen -W "$(wal autocomplete --list namespaces 2>/dev/null)" -- "$cur") ); return 0 ;;
    ${TARGET_FLAGS.join('|')})
      local i ns=''
      for (( i=1; i < COMP_CWORD; i++ )); do
        case "\${COMP_WORDS[i]}" in -n|--namespace) ns="\${COMP_WORDS[i+1]}" ;; esac
      done
      COMPREPLY=( $(compgen -W "$(wal autocomplete --list targets \${ns:+-n "$ns"} 2>/dev/null)" -- "$cur") ); return 0 ;;
    -c|--config|--payload-file)
      COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;;
    --context)
      COMPREPLY=( $(compgen -W "$(wal autocomplete --list contexts 2>/dev/null)" -- "$cur") ); return 0 ;;
  esac
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W ${quote(topLevel.join(' '))} -- "$cur") ); return 0
  fi
  cmd="\${COMP_WORDS[1]}"
  case "$cmd" in
${subCases}
    *) subs='' ;;
  esac
  if [ -n "$subs" ] && [ "$COMP_CWORD" -eq 2 ]; then
    COMPREPLY=( $(compgen -W "$subs" -- "$cur") ); return 0
  fi
  if [ -n "$subs" ]; then cmd="$cmd \${COMP_WORDS[2]}"; fi
  case "$cmd" in
${flagCases}
    *) flags='--help' ;;
  esac
  if [ "$cmd" = "help" ]; then
    COMPREPLY=( $(compgen -W ${quote(topLevel.join(' '))} -- "$cur") ); return 0
  fi
  if [ "$cmd" = "ns show" ] || [ "$cmd" = "ns init" ]; then
    case "$cur" in -*) ;; *) COMPREPLY=( $(compgen -W "$(wal autocomplete --list namespaces 2>/dev/null)" -- "$cur") ); return 0 ;; esac
  fi
  COMPREPLY=( $(compgen -W "$flags" -- "$cur") )
  return 0
}
complete -o default -F _wal_completions wal
`
}

/** zsh: the bash function through zsh's bashcompinit. */
export function zshScript(commands: readonly CompletionCommand[]): string {
  return `# wal completion for zsh. Load it with: source <(wal autocomplete zsh)   (in ~/.zshrc)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(commands).split('\n').slice(2).join('\n')}`
}

/** fish. */
export function fishScript(commands: readonly CompletionCommand[]): string {
  const list = visible(commands)
  const lines = [
    '# wal completion for fish. Load it with: wal autocomplete fish | source',
    '# or save it: wal autocomplete fish > ~/.config/fish/completions/wal.fish',
    'complete -c wal -f',
  ]
  const top = new Map<string, string>()
  for (const c of list) {
    const [head, sub] = c.id.split(':')
    if (sub === undefined) top.set(head!, c.summary ?? '')
    else if (!top.has(head!)) top.set(head!, `${head} commands`)
  }
  top.set('help', 'Show help for wal or a command')
  const topWords = [...top.keys()].join(' ')
  for (const [word, summary] of top) {
    lines.push(`complete -c wal -n "not __fish_seen_subcommand_from ${topWords}" -a ${quote(word)} -d ${quote(summary.split('\n')[0]!.slice(0, 80))}`)
  }
  for (const c of list) {
    const [head, sub] = c.id.split(':')
    if (sub !== undefined) {
      lines.push(`complete -c wal -n "__fish_seen_subcommand_from ${head}; and not __fish_seen_subcommand_from ${sub}" -a ${quote(sub)} -d ${quote((c.summary ?? '').split('\n')[0]!.slice(0, 80))}`)
    }
    const condition = sub === undefined ? `__fish_seen_subcommand_from ${head}` : `__fish_seen_subcommand_from ${head}; and __fish_seen_subcommand_from ${sub}`
    for (const [name, flag] of Object.entries(c.flags)) {
      if (flag.hidden) continue
      let line = `complete -c wal -n "${condition}" -l ${name}`
      if (flag.char) line += ` -s ${flag.char}`
      if (flag.type === 'option') {
        if (name === 'namespace' || name === 'to-namespace') line += " -x -a '(wal autocomplete --list namespaces 2>/dev/null)'"
        else if (name === 'target') line += " -x -a '(wal autocomplete --list targets 2>/dev/null)'"
        else if (name === 'context') line += " -x -a '(wal autocomplete --list contexts 2>/dev/null)'"
        else if (name === 'config' || name === 'payload-file') line += ' -r -F'
        else line += ' -r'
      }
      lines.push(line)
    }
  }
  lines.push(`complete -c wal -n "__fish_seen_subcommand_from help" -a ${quote([...top.keys()].join(' '))}`)
  return `${lines.join('\n')}\n`
}
