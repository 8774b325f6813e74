"""runners/nspawn_supervisor.py with a stand-in for systemd-nspawn (a shell script on the same pty): the
console is recorded and typed on, a reboot (status 133) starts it again, and when the session's pipe closes
the machine stops, unless the state directory is marked kept."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pytest_mkosi.machine.state import KEPT
from pytest_mkosi.runners.nspawn import SUPERVISOR

# First start: asks for a reboot. Later starts: echo what is typed, until SIGTERM (then say so and exit 0).
GUEST = """
if [ ! -e "$1/booted" ]; then touch "$1/booted"; echo first-boot; exit 133; fi
trap 'echo halting; exit 0' TERM
echo second-boot $$
exec 3<&0  # an asynchronous list's stdin would be /dev/null
while read -r line <&3; do echo "typed:$line"; done &
wait
"""


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def start(tmp_path: Path) -> subprocess.Popen[bytes]:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "argv": ["/bin/sh", "-c", GUEST, "guest", str(tmp_path)], "state_dir": str(tmp_path),
        "console_log": str(tmp_path / "console.log"), "console_socket": str(tmp_path / "console.sock"),
        "unlink_before_spawn": [str(tmp_path / "stale.sock")],
    }))
    (tmp_path / "stale.sock").write_text("")
    return subprocess.Popen([sys.executable, "-I", str(SUPERVISOR), str(spec)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True)


def events(process: subprocess.Popen[bytes], count: int) -> list[list[str]]:
    assert process.stdout is not None
    return [process.stdout.readline().decode().split() for _ in range(count)]


def console(tmp_path: Path) -> str:
    return (tmp_path / "console.log").read_bytes().decode(errors="replace")


def guest_pid(tmp_path: Path) -> int:
    assert wait_until(lambda: "second-boot" in console(tmp_path))
    return int(console(tmp_path).split("second-boot ")[1].split()[0])


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def test_console_reboot_and_stop_when_the_session_ends(tmp_path: Path) -> None:
    process = start(tmp_path)
    try:
        first, exited, second = events(process, 3)
        assert first[:2] == ["spawned", "1"] and exited == ["exited", "1", "133"] and second[:2] == ["spawned", "2"]
        pid = guest_pid(tmp_path)
        assert not (tmp_path / "stale.sock").exists()
        assert oct((tmp_path / "console.sock").stat().st_mode & 0o777) == "0o600"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(tmp_path / "console.sock"))
            sock.sendall(b"hello\n")
        assert wait_until(lambda: "typed:hello" in console(tmp_path)), console(tmp_path)
        assert "first-boot" in console(tmp_path)
        assert process.stdin is not None
        process.stdin.close()  # the session ended: the machine is powered off
        assert process.wait(10) == 0
        assert events(process, 1) == [["exited", "2", "0"]]
        assert "halting" in console(tmp_path) and not alive(pid)
    finally:
        process.kill()
        process.wait()


def test_a_kept_machine_outlives_the_session_until_stopped(tmp_path: Path) -> None:
    process = start(tmp_path)
    try:
        events(process, 3)
        pid = guest_pid(tmp_path)
        (tmp_path / KEPT).write_text(f"{os.getpid()}\n")
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        process.stdout.close()  # the session is gone altogether: events go nowhere now
        time.sleep(1)
        assert process.poll() is None and alive(pid)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # its console still takes typing
            sock.connect(str(tmp_path / "console.sock"))
            sock.sendall(b"still-here\n")
        assert wait_until(lambda: "typed:still-here" in console(tmp_path)), console(tmp_path)
        process.terminate()  # what machine.state's stop does
        assert process.wait(10) == 0 and not alive(pid)
    finally:
        process.kill()
        process.wait()
