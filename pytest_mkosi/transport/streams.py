"""Reading one command's output off an SSH channel: both streams at once, each up to a random end marker.

The first line of stdout is the command's process group (what a timeout kills). The marker ends each
stream: once both showed it, everything the command wrote has arrived, whether or not the channel ever
reaches EOF (a background process may hold it open). On a channel that runs one command (an exec channel)
that is all. On the persistent command shell (command_shell.py) the channel stays open for the next
command, so each stream also opens with the marker and `+` (what comes before it was written by a process
of an earlier command, not by this one), and stdout's end marker is followed by a status line,
`RC STRAYS\\n`.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paramiko

# Called with ("stdout" | "stderr", line) for every complete line while a command runs (stream=True).
LineSink = Callable[[str, str], None]


@dataclass
class _Stream:
    name: str
    data: bytearray = field(default_factory=bytearray)
    done: bool = False
    emitted: int = 0  # how much of data went to the line sink already
    # What came after the marker: the status line on the command shell's stdout, stray bytes otherwise.
    trailer: bytearray = field(default_factory=bytearray)
    # Whether the stream's opening (command shell: the marker and "+") has come; what came before it.
    opened: bool = True
    early: bytearray = field(default_factory=bytearray)


@dataclass
class OutputStreams:
    marker: bytes
    on_line: LineSink | None
    # True on the command shell: each stream opens with the marker and "+", stdout's end marker is followed
    # by a status line, and the exit status comes from it (the channel has none: it stays open).
    status_line: bool = False
    # The process group of the command, from the first line of stdout (None until it arrived).
    group: int | None = None
    # Bytes came before a stream's opening: a process of an earlier command still writes to the shell.
    strays_wrote: bool = False
    _header: bytearray = field(default_factory=bytearray)
    out: _Stream = field(default_factory=lambda: _Stream("stdout"))
    err: _Stream = field(default_factory=lambda: _Stream("stderr"))

    def __post_init__(self) -> None:
        if self.status_line:
            self.out.opened = self.err.opened = False

    @property
    def opening(self) -> bytes:
        return self.marker + b"+"

    @property
    def complete(self) -> bool:
        """Both markers seen (and, on the command shell, the whole status line after stdout's)."""
        return self.out.done and self.err.done and (not self.status_line or b"\n" in self.out.trailer)

    def collect(self, channel: paramiko.Channel, deadline: float | None) -> str:
        """Read both streams together (neither may fill its window and block the other) until both showed
        the end marker and the exit status is in, or EOF. Returns "done", "timeout" (`deadline` passed) or
        "closed" (the connection went down under the command: the guest rebooted or powered off; on the
        command shell also: the shell exited)."""
        while True:
            self._drain(channel)
            if self.status_line and self.complete:
                self._emit(self.out, final=True)
                self._emit(self.err, final=True)
                return "done"
            if channel.closed and not channel.eof_received:
                return "closed"
            if channel.eof_received or (not self.status_line and self.out.done and self.err.done):
                break
            if deadline is not None and time.monotonic() > deadline:
                return "timeout"
            # The channel's fd wakes us for data on either stream and for EOF.
            select.select([channel], [], [], 0.5)
        if self.status_line:
            return "closed"  # EOF before the status line: the shell is gone
        # The exit status follows the output; it does not wake the fd, but its event does.
        remaining = 5.0 if deadline is None else max(0.0, deadline - time.monotonic())
        channel.status_event.wait(remaining)
        self._drain(channel)
        self._emit(self.out, final=True)
        self._emit(self.err, final=True)
        return "done" if channel.exit_status_ready() else "timeout"

    def status(self) -> tuple[int, bool] | None:
        """The command shell's status line: (exit status, whether a stray process holds the output), or
        None when it is not one (then the shell cannot be trusted with another command)."""
        line, _, rest = bytes(self.out.trailer).partition(b"\n")
        words = line.split()
        if rest or self.err.trailer or len(words) != 2 or not all(w.isdigit() for w in words):
            return None
        return int(words[0]), words[1] != b"0"

    def _drain(self, channel: paramiko.Channel) -> None:
        while channel.recv_ready():
            self._take(self.out, channel.recv(65536))
        while channel.recv_stderr_ready():
            self._take(self.err, channel.recv_stderr(65536))

    def _take(self, stream: _Stream, chunk: bytes) -> None:
        if not stream.opened:
            stream.early += chunk
            at = stream.early.find(self.opening)
            if at < 0:
                return
            self.strays_wrote = self.strays_wrote or at > 0
            chunk = bytes(stream.early[at + len(self.opening):])
            stream.opened = True
            stream.early.clear()
        if stream is self.out and self.group is None:
            chunk = self._read_header(chunk)
        self._feed(stream, chunk)

    def _read_header(self, chunk: bytes) -> bytes:
        self._header += chunk
        head, newline, rest = bytes(self._header).partition(b"\n")
        if not newline:
            return b""
        self.group = int(head) if head.isdigit() else 0
        return rest

    def _feed(self, stream: _Stream, chunk: bytes) -> None:
        if not chunk:
            return
        if stream.done:
            # Not the command's: its status line, or what a background process wrote after it ended.
            stream.trailer += chunk
            return
        start = max(0, len(stream.data) - len(self.marker))
        stream.data += chunk
        at = stream.data.find(self.marker, start)
        if at >= 0:
            stream.trailer += stream.data[at + len(self.marker):]
            del stream.data[at:]
            stream.done = True
        self._emit(stream, final=False)

    def _emit(self, stream: _Stream, *, final: bool) -> None:
        if self.on_line is None:
            return
        # Only complete lines while the stream goes on (the marker has no newline, so it is never in one).
        pending = bytes(stream.data[stream.emitted:])
        cut = len(pending) if final else pending.rfind(b"\n") + 1
        for text in pending[:cut].decode(errors="replace").splitlines():
            self.on_line(stream.name, text)
        stream.emitted += cut

    def text(self) -> tuple[str, str]:
        return self.out.data.decode(errors="replace"), self.err.data.decode(errors="replace")
