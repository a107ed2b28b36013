/**
 * A real terminal for live views: a command in a detached tmux session of a fixed size, on a tmux
 * server of its own (its own socket), so tests never touch anyone's tmux and clean up completely.
 */
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'

import { waitFor } from './wal.js'

export interface Terminal {
  /** The visible screen, as text. */
  screen(): string
  /** tmux key names (Enter, Up, Escape, C-c) or, with literal, text typed as is. */
  keys(keys: string, options?: { literal?: boolean }): void
  /** Waits until the screen contains the text (or matches the pattern); returns the screen. */
  waitForScreen(expected: string | RegExp, timeoutMs?: number): Promise<string>
  /** The pid of the shell the command runs under (the command is its child). */
  panePid(): number
  kill(): void
}

function quote(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`
}

export function openTerminal({ name, command, env, cwd, columns = 120, rows = 30 }: { name: string; command: readonly string[]; env: Record<string, string>; cwd: string; columns?: number; rows?: number }): Terminal {
  const socket = `wal-test-${name}-${process.pid}-${Date.now()}`
  const tmux = (args: readonly string[]): string => {
    const result = spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' })
    if (result.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${result.stderr}`)
    return result.stdout
  }
  // The exit code stays on the screen after the command ends, for the test to read.
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`)
  const shell = `cd ${quote(cwd)} && env -i ${assignments.join(' ')} TERM=xterm-256color ${command.map(quote).join(' ')}; echo "EXIT=$?"; sleep 600`
  tmux(['new-session', '-d', '-s', 'main', '-x', String(columns), '-y', String(rows), shell])
  const socketPath = tmux(['display-message', '-p', '#{socket_path}']).trim()
  const screen = (): string => tmux(['capture-pane', '-p', '-t', 'main'])
  return {
    screen,
    keys(keys, { literal = false } = {}) {
      tmux(['send-keys', '-t', 'main', ...(literal ? ['-l'] : []), keys])
    },
    async waitForScreen(expected, timeoutMs = 15_000) {
      const matches = (text: string): boolean => (typeof expected === 'string' ? text.includes(expected) : expected.test(text))
      try {
        return await waitFor(() => {
          const text = screen()
          return matches(text) ? text : ''
        }, { timeoutMs, intervalMs: 50 })
      } catch {
        throw new Error(`the screen never showed ${String(expected)}; it shows:\n${screen()}`)
      }
    },
    panePid() {
      return Number(tmux(['list-panes', '-t', 'main', '-F', '#{pane_pid}']).trim())
    },
    kill() {
      spawnSync('tmux', ['-L', socket, 'kill-server'])
      // tmux leaves the socket file behind.
      if (socketPath !== '') rmSync(socketPath, { force: true })
    },
  }
}
