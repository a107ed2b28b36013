# Runs a command on a pseudo-terminal (so it sees a TTY), answers one prompt, and relays its output and
# exit code. Usage: python3 on-terminal.py PROMPT_SUBSTRING ANSWER -- COMMAND ARGS...
import os, pty, sys

prompt, answer = sys.argv[1].encode(), sys.argv[2].encode()
command = sys.argv[sys.argv.index('--') + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(command[0], command)
seen = b''
answered = False
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if not answered and prompt in seen:
        os.write(fd, answer + b'\n')
        answered = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode('utf8', 'replace'))
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
