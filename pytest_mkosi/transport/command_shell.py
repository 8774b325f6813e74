"""One bash per SSH connection that runs the Machine's commands one after another, so that a command costs a
request on a channel that is already open instead of a new channel, an exec and a bash start each time.

The guest's login shell (bash: Machine asks first) runs SERVER once. It reads one request per line,

    __pm_run $'MARKER' $'CODE'

and runs CODE as a job in a subshell of its own process group (`set -m`), stdin /dev/null, so that no
command sees another's variables, directory or input, and a timeout kills the job and everything it started
(the host's kill goes to the group, on a channel of its own). Each stream of the job opens with MARKER and
`+` (stdout then gives the job's process group on a line); when the job has ended, stdout gets MARKER and
`RC STRAYS`, stderr MARKER (transport/streams.py reads them).

A command that leaves a background process holding stdout or stderr (`cmd &`) would write into the output
of later commands: STRAYS is 1 when a process of the job's group still holds either, and the host then
closes the shell, as it closes an exec channel after its command (the process's later writes fail). A
process that left the group (setsid) and writes later is seen by the bytes it puts before the next
command's opening: the shell is closed after that command too.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable

import paramiko

from pytest_mkosi.machine.result import CommandResult, CommandTimeout
from pytest_mkosi.transport.streams import LineSink, OutputStreams

# How long after killing a timed out command we wait for its end to be reported.
KILL_GRACE = 5.0

SERVER = r"""# Not under 2>/dev/null: that would make this shell's own fd 2 /dev/null, which every daemon holds.
__pm_holders() {
    local f
    for f in /proc/[0-9]*/fd/1 /proc/[0-9]*/fd/2; do
        case $f in "/proc/$$/"*) continue ;; esac
        if [ "$f" -ef "/proc/$$/fd/1" ] || [ "$f" -ef "/proc/$$/fd/2" ]; then return 0; fi
    done
    return 1
}
__pm_strays() {
    __pm_s=0
    kill -0 -- "-$1" 2>/dev/null || return 0
    # A job that ended right after `cmd >file &` may have a child that has not applied its redirections
    # yet: a holder counts only when it still holds a moment later.
    __pm_holders && sleep 0.05 && __pm_holders && __pm_s=1
    return 0
}
__pm_run() {
    local __pm_marker=$1 __pm_code=$2 __pm_pid __pm_rc
    set -m
    (
        set --
        printf '%s+%s\n' "$__pm_marker" "$BASHPID"
        printf '%s+' "$__pm_marker" >&2
        eval "$__pm_code"
    ) </dev/null &
    __pm_pid=$!
    set +m
    wait "$__pm_pid" 2>/dev/null
    __pm_rc=$?
    __pm_strays "$__pm_pid"
    printf '%s%s %s\n' "$__pm_marker" "$__pm_rc" "$__pm_s"
    printf '%s' "$__pm_marker" >&2
}
while IFS= read -r __pm_line; do eval "$__pm_line"; done
"""


def ansi_c_quoted(text: str) -> str:
    """`text` as one bash word on one line: $'...' with every byte outside printable ASCII escaped."""
    out = []
    for byte in text.encode():
        if byte == 0:
            raise ValueError("a command cannot contain a NUL byte")
        char = chr(byte)
        if char in "\\'":
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"


class CommandShell:
    """The server side of one connection's command shell, and the requests sent to it."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.retired = False

    @classmethod
    def open(cls, transport: paramiko.Transport) -> CommandShell | None:
        """Start SERVER on a channel of its own; None when that fails (the caller uses exec channels)."""
        try:
            channel = transport.open_session(timeout=30.0)
            channel.exec_command(SERVER)
        except (paramiko.SSHException, EOFError, OSError):
            return None
        return cls(channel)

    @property
    def usable(self) -> bool:
        channel = self.channel
        return not (self.retired or channel.closed or channel.eof_received or channel.exit_status_ready())

    def try_run(self, code: str, *, timeout: float | None, display: str, on_line: LineSink | None,
                kill_group: Callable[[int | None], None]) -> CommandResult | None:
        """Run bash CODE; None when the shell could not take it (it did not start CODE: use another).
        Raises CommandTimeout when `timeout` passes (the job is killed first) and ConnectionError when
        the connection went down under the command."""
        __tracebackhide__ = True
        channel = self.channel
        # Bytes between commands: something an earlier command left behind writes to the shell.
        if not self.usable or channel.recv_ready() or channel.recv_stderr_ready():
            self.close()
            return None
        marker = f"<pytest-mkosi-{secrets.token_hex(12)}>"
        request = f"__pm_run {ansi_c_quoted(marker)} {ansi_c_quoted(code)}\n".encode()
        started = time.monotonic()
        try:
            channel.sendall(request)
        except (paramiko.SSHException, EOFError, OSError):
            self.close()
            return None
        streams = OutputStreams(marker.encode(), on_line, status_line=True)
        try:
            outcome = ended = streams.collect(channel, None if timeout is None else started + timeout)
            if outcome == "timeout":
                kill_group(streams.group)
                # The shell goes on when it reports the killed job's end.
                ended = streams.collect(channel, time.monotonic() + KILL_GRACE)
        except (paramiko.SSHException, EOFError, OSError):
            outcome = ended = "closed"
        except BaseException:
            # Ctrl-C while the command runs: the shell is still busy with it, so no later command may wait
            # behind it (the teardown's journal, say).
            self.close()
            raise
        duration = time.monotonic() - started
        stdout, stderr = streams.text()
        status = streams.status()
        if ended != "done" or status is None or status[1] or streams.strays_wrote:
            self.close()
        if outcome == "timeout":
            raise CommandTimeout(display, timeout or 0.0, stdout, stderr)
        if outcome == "closed":
            transport = channel.get_transport()
            if transport is None or not transport.is_active():
                raise ConnectionError(f"the connection to the machine went down while running: {display}")
            if not streams.out.opened:
                return None  # the shell was gone before it started the command
            # The command ended the shell itself (killed it, say): as an exec channel that closed early.
            return CommandResult(display, -1, stdout, stderr, duration)
        return CommandResult(display, -1 if status is None else status[0], stdout, stderr, duration)

    def close(self, *, wait: float = 0.0) -> None:
        """Close the channel; with `wait`, first end the shell's input and wait (that long at most) for its
        exit status, so that sshd has nothing left to send for this channel (SshConnection.settle)."""
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            if wait > 0 and self.usable:
                self.channel.shutdown_write()
                self.channel.status_event.wait(wait)
            self.channel.close()
        self.retired = True
