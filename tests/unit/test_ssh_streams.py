"""How SshConnection reads a command's output: the process group header, the end marker, line streaming."""

from __future__ import annotations

import os
import threading
import types

import pytest

from pytest_mkosi.transport.ssh import SshConnection
from pytest_mkosi.transport.streams import OutputStreams

MARKER = b"<end-123>"


class FakeChannel:
    """Just enough of paramiko.Channel: chunks of stdout/stderr that arrive, an exit status, maybe EOF."""

    def __init__(self, out: list[bytes], err: list[bytes], *, eof: bool = False, status: bool = True) -> None:
        self.out, self.err = list(out), list(err)
        self.eof_received = eof
        self.closed = False
        self.status_event = threading.Event()
        if status:
            self.status_event.set()

    def recv_ready(self) -> bool:
        return bool(self.out)

    def recv(self, n: int) -> bytes:
        return self.out.pop(0)

    def recv_stderr_ready(self) -> bool:
        return bool(self.err)

    def recv_stderr(self, n: int) -> bytes:
        return self.err.pop(0)

    def exit_status_ready(self) -> bool:
        return self.status_event.is_set()

    def fileno(self) -> int:
        return self._r

    def __enter__(self) -> FakeChannel:
        self._r, self._w = os.pipe()
        os.write(self._w, b"x")  # always readable: select never blocks
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._r)
        os.close(self._w)


def test_header_gives_the_process_group_and_markers_end_both_streams() -> None:
    with FakeChannel([b"41", b"7\nhel", b"lo\n<end-", b"123>late output"], [b"oops\n<end-123>"]) as channel:
        streams = OutputStreams(MARKER, None)
        assert streams.collect(channel, None) == "done"  # type: ignore[arg-type]
    assert streams.group == 417
    assert streams.text() == ("hello\n", "oops\n")


def test_no_marker_yet_and_the_deadline_passed_is_incomplete() -> None:
    with FakeChannel([b"5\nworking\n"], [], status=False) as channel:
        streams = OutputStreams(MARKER, None)
        assert streams.collect(channel, 0.0) == "timeout"  # type: ignore[arg-type]
    assert streams.group == 5 and streams.text()[0] == "working\n"


def test_eof_without_marker_ends_too() -> None:
    with FakeChannel([b"5\n"], [b"bash: syntax error\n"], eof=True) as channel:
        streams = OutputStreams(MARKER, None)
        assert streams.collect(channel, None) == "done"  # type: ignore[arg-type]
    assert streams.text() == ("", "bash: syntax error\n")


def test_lines_are_streamed_whole_as_they_come() -> None:
    seen: list[tuple[str, str]] = []
    with FakeChannel([b"1\nfirst li", b"ne\nsecond", b" line<end-123>"], [b"e1\n<end-123>"]) as channel:
        streams = OutputStreams(MARKER, lambda name, line: seen.append((name, line)))
        assert streams.collect(channel, None) == "done"  # type: ignore[arg-type]
    assert seen.index(("stdout", "first line")) < seen.index(("stdout", "second line"))
    assert sorted(seen) == [("stderr", "e1"), ("stdout", "first line"), ("stdout", "second line")]


def test_a_channel_closed_under_us_ends_without_waiting_for_the_deadline() -> None:
    with FakeChannel([b"5\npartial"], [], status=False) as channel:
        channel.closed = True  # the guest went down mid-command
        streams = OutputStreams(MARKER, None)
        assert streams.collect(channel, None) == "closed"  # type: ignore[arg-type]
    assert streams.text()[0] == "partial"


class _GoneChannel(FakeChannel):
    """A channel whose transport went away under the command (a reboot from inside it)."""

    def exec_command(self, line: str) -> None:
        pass

    def shutdown_write(self) -> None:
        pass

    def close(self) -> None:
        raise EOFError()


def test_a_transport_gone_under_the_command_is_a_connection_error() -> None:
    with _GoneChannel([b"1234\n"], [], eof=False, status=False) as channel:
        channel.closed = True  # closed without EOF: the connection went down
        transport = types.SimpleNamespace(is_active=lambda: True, open_session=lambda timeout: channel)
        client = types.SimpleNamespace(get_transport=lambda: transport)
        with pytest.raises(ConnectionError, match="went down"):
            SshConnection(client).run("systemctl reboot")  # type: ignore[arg-type]
