"""serial_sshd: only a fresh sshd's banner, alone, makes a virtio-serial connection usable (a fake port
that replays what an old session left behind before the fresh sshd's turn)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.launch.serial_sshd import PrefixedSocket, open_fresh_sshd

BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


class FakePort:
    """A unix socket server; connection N is answered with `script[N]` (bytes sent at once; None: nothing)."""

    def __init__(self, path: Path, script: list[bytes | None]) -> None:
        self.path = path
        self.script = script
        self.connections = 0
        self.received: list[bytes] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for said in self.script:
            conn, _ = self.server.accept()
            self.connections += 1
            if said:
                conn.sendall(said)
            data = b""
            conn.settimeout(5)
            try:
                while chunk := conn.recv(4096):
                    data += chunk
            except TimeoutError:
                pass
            self.received.append(data)
            conn.close()

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.path))
        return sock


@pytest.fixture
def port_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "ssh.sock"


def fresh(port: FakePort, **kwargs: object) -> tuple[socket.socket, bytes, list[float]]:
    pauses: list[float] = []
    sock, banner = open_fresh_sshd(port.connect, deadline=time.monotonic() + 30, quiet=0.1,
                                   sleep=pauses.append, **kwargs)  # type: ignore[arg-type]
    return sock, banner, pauses


def test_a_fresh_banner_is_taken_at_once(port_path: Path) -> None:
    port = FakePort(port_path, [BANNER])
    sock, banner, pauses = fresh(port)
    with sock:
        assert banner == BANNER and pauses == [] and port.connections == 1


@pytest.mark.parametrize("old", [
    b"\x00\x00\x04\xcc\x0a\x14" + b"x" * 40,  # the end of an old session's packet
    b"Invalid SSH identification string.\r\n",  # an old sshd's complaint about the last client's bytes
    BANNER + b"\x00\x00\x01\x2c\x0a\x14kexinit",  # a banner followed by more: an old session, not a fresh sshd
])
def test_an_old_sessions_bytes_are_read_away_and_the_port_tried_again(port_path: Path, old: bytes) -> None:
    port = FakePort(port_path, [old, BANNER])
    sock, banner, pauses = fresh(port)
    with sock:
        assert banner == BANNER and port.connections == 2
    assert pauses == [1.0]


def test_the_pause_doubles_and_the_deadline_ends_it(port_path: Path) -> None:
    port = FakePort(port_path, [b"garbage\n", b"garbage\n", b"garbage\n", b"garbage\n", BANNER])
    sock, _, pauses = fresh(port)
    sock.close()
    assert pauses == [1.0, 2.0, 4.0, 4.0]
    with pytest.raises(TimeoutError, match="no fresh sshd"):
        open_fresh_sshd(FakePort(port_path.with_name("b.sock"), [b"junk\n"] * 3).connect,
                        deadline=time.monotonic() + 2.0, quiet=0.1)


def test_a_silent_connection_is_given_up(port_path: Path) -> None:
    port = FakePort(port_path, [None, BANNER])
    sock, banner, pauses = fresh(port, silence_limit=0.3)
    with sock:
        assert banner == BANNER and pauses == [1.0] and port.connections == 2


def test_the_banner_is_replayed_to_the_client(port_path: Path) -> None:
    port = FakePort(port_path, [BANNER])
    sock, banner, _ = fresh(port)
    replay = PrefixedSocket(sock, banner)
    with replay:
        assert replay.recv(10) == BANNER[:10] and replay.recv(4096) == BANNER[10:]


def test_the_relay_passes_on_only_a_fresh_sshd(port_path: Path) -> None:
    port = FakePort(port_path, [b"\x00\x00\x00\x0cold-session", BANNER + b""])
    result = subprocess.run([sys.executable, "-m", "imagebuild.launch.relay", "serial", str(port_path)],
                            input=b"SSH-2.0-client\r\n", capture_output=True, timeout=30, check=False)
    assert result.stdout == BANNER, result.stderr
    port.thread.join(10)
    assert port.received[-1] == b"SSH-2.0-client\r\n"
