"""The command shell (pytest_mkosi/transport/command_shell.py) with a real bash behind a channel made of
pipes: what SSH would carry, without sshd. What the guest runs is the same SERVER script."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
import time
import types
from collections.abc import Iterator

import pytest

from pytest_mkosi.machine.result import CommandTimeout, as_bash_code
from pytest_mkosi.transport.command_shell import SERVER, CommandShell, ansi_c_quoted
from pytest_mkosi.transport.streams import OutputStreams


class BashChannel:
    """Just enough of paramiko.Channel for CommandShell, over the pipes of a local `bash -c SERVER`."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(["bash", "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.out_fd, self.err_fd = self.process.stdout.fileno(), self.process.stderr.fileno()
        self.closed = False
        self.eof_received = False
        self.transport = types.SimpleNamespace(is_active=lambda: True)
        # select() on fileno() must wake for either stream, as a paramiko channel's does.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._pending: dict[int, bytearray] = {self.out_fd: bytearray(), self.err_fd: bytearray()}
        self._lock = threading.Lock()
        self.status_event = threading.Event()  # the shell's exit status came (it exited)
        self.closed_while_running = False
        self._pump = threading.Thread(target=self._read_both, daemon=True)
        self._pump.start()

    def _read_both(self) -> None:
        fds = [self.out_fd, self.err_fd]
        while fds:
            ready, _, _ = select.select(fds, [], [])
            for fd in ready:
                chunk = os.read(fd, 65536)
                with self._lock:
                    if not chunk:
                        fds.remove(fd)
                        if fd == self.out_fd:
                            self.eof_received = True
                    self._pending[fd] += chunk
                os.write(self._wake_w, b"x")
        self.process.wait()
        self.status_event.set()

    def release(self) -> None:
        """After close(): the pump has seen both pipes end; its descriptors go."""
        self.close()
        self.process.wait(10)
        self._pump.join(10)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.process.stdout.close()
        self.process.stderr.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _take(self, fd: int) -> bytes:
        with self._lock:
            data = bytes(self._pending[fd])
            self._pending[fd].clear()
        return data

    def recv_ready(self) -> bool:
        # Called first whenever streams.py reads: the wake-ups so far are used up.
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 65536)
        return bool(self._pending[self.out_fd])

    def recv(self, n: int) -> bytes:
        return self._take(self.out_fd)

    def recv_stderr_ready(self) -> bool:
        return bool(self._pending[self.err_fd])

    def recv_stderr(self, n: int) -> bytes:
        return self._take(self.err_fd)

    def fileno(self) -> int:
        return self._wake_r

    def sendall(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def exit_status_ready(self) -> bool:
        return self.process.poll() is not None

    def get_transport(self) -> types.SimpleNamespace:
        return self.transport

    def shutdown_write(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def close(self) -> None:
        # As paramiko's: the far end learns of it; nothing waits for the shell to go.
        if not self.closed:
            self.closed = True
            self.closed_while_running = self.process.poll() is None
            assert self.process.stdin is not None
            self.process.stdin.close()


@pytest.fixture
def shell() -> Iterator[CommandShell]:
    channel = BashChannel()
    shell = CommandShell(channel)  # type: ignore[arg-type]
    yield shell
    channel.release()


def kill_group(group: int | None) -> None:
    assert group is not None and group > 1
    os.killpg(group, 9)


def run(shell: CommandShell, cmd: str | list[str], timeout: float | None = 10.0):  # type: ignore[no-untyped-def]
    result = shell.try_run(as_bash_code(cmd), timeout=timeout, display=str(cmd), on_line=None,
                           kill_group=kill_group)
    assert result is not None
    return result


def test_ansi_c_quoting_round_trips_through_bash() -> None:
    text = "a'b\\c\n\t\"$HOME\" `x` ü €\x01"
    printed = subprocess.run(["bash", "-c", f"printf %s {ansi_c_quoted(text)}"], capture_output=True, check=True)
    assert printed.stdout.decode() == text
    assert "\n" not in ansi_c_quoted(text)
    with pytest.raises(ValueError, match="NUL"):
        ansi_c_quoted("a\0b")


def test_commands_run_one_after_another_in_one_bash(shell: CommandShell) -> None:
    first = run(shell, "echo out; echo err >&2; exit 3")
    assert (first.returncode, first.stdout, first.stderr) == (3, "out\n", "err\n")
    # -e and pipefail, as under `bash -o pipefail -e -c`; lists as quoted words.
    assert run(shell, "false; echo not reached").returncode == 1
    assert run(shell, "false | true").returncode == 1
    assert run(shell, ["echo", "a  b", "$HOME"]).stdout == "a  b $HOME\n"
    server = shell.channel.process.pid  # type: ignore[attr-defined]
    assert run(shell, "echo $$").stdout == f"{server}\n" and shell.usable


def test_no_command_sees_another_ones_state_or_input(shell: CommandShell) -> None:
    run(shell, "cd /tmp; X=1; export Y=2; set -u; trap 'echo trapped' EXIT")
    assert run(shell, 'pwd; echo "${X-unset} ${Y-unset} [$1][$#]"').stdout == f"{os.getcwd()}\nunset unset [][0]\n"
    # stdin is /dev/null: cat does not eat the next request.
    assert run(shell, "cat; echo after").stdout == "after\n"
    assert run(shell, "echo next").stdout == "next\n"
    # A syntax error runs nothing of the command.
    broken = run(shell, "echo ran; if")
    assert broken.returncode == 2 and broken.stdout == "" and "syntax error" in broken.stderr


def test_each_command_is_a_process_group_of_its_own(shell: CommandShell) -> None:
    server = shell.channel.process.pid  # type: ignore[attr-defined]
    out = run(shell, "ps -o pid=,pgid= -p $BASHPID; sleep 5 & ps -o pgid= -p $!; kill $!").stdout.split()
    pid, pgid, child_pgid = out
    assert pid == pgid == child_pgid and int(pgid) != os.getpgid(server)


def test_a_timeout_kills_the_group_and_the_shell_goes_on(shell: CommandShell) -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as raised:
        run(shell, "echo started; sleep 31.7 & sleep 31.8; echo never", timeout=0.5)
    assert time.monotonic() - started < 5
    assert "started" in str(raised.value)
    assert shell.usable and run(shell, "echo alive").stdout == "alive\n"
    assert subprocess.run(["pgrep", "-f", "^sleep 31.[78]$"], capture_output=True).stdout == b""


def test_a_background_process_holding_stdout_retires_the_shell(shell: CommandShell) -> None:
    # Redirected, it holds nothing of the shell's: the shell stays.
    assert run(shell, "sleep 2 >/dev/null 2>&1 &").returncode == 0 and shell.usable
    result = run(shell, "sleep 2 &")
    assert result.returncode == 0 and not shell.usable


def test_bytes_before_a_command_mean_the_shell_cannot_take_it() -> None:
    channel = BashChannel()
    shell = CommandShell(channel)  # type: ignore[arg-type]
    try:
        # setsid: out of the job's group (by the time the job ends), so not seen when the command ends; its
        # later write reaches the idle shell.
        assert run(shell, "setsid sh -c 'sleep 0.3; echo late' & sleep 0.1").returncode == 0
        assert shell.usable
        time.sleep(0.6)
        assert shell.try_run("true", timeout=5, display="true", on_line=None, kill_group=kill_group) is None
        assert not shell.usable and channel.closed
    finally:
        channel.release()


def test_a_command_that_ends_the_shell_has_no_exit_status(shell: CommandShell) -> None:
    result = run(shell, "kill -9 $$; echo the job goes on")
    assert result.returncode == -1 and not shell.usable


def test_status_line_and_openings_are_parsed_from_chunks() -> None:
    streams = OutputStreams(b"<m>", None, status_line=True)
    streams._take(streams.out, b"stray\n<m")
    streams._take(streams.out, b">+41\nhello\n<m>0 ")
    assert not streams.complete
    streams._take(streams.out, b"1\n")
    streams._take(streams.err, b"<m>+oops\n<m>")
    assert streams.complete and streams.group == 41 and streams.strays_wrote
    assert streams.text() == ("hello\n", "oops\n") and streams.status() == (0, True)
    garbled = OutputStreams(b"<m>", None, status_line=True)
    garbled._take(garbled.out, b"<m>+1\n<m>x y\n")
    assert garbled.status() is None


def test_an_interrupted_command_retires_the_shell(shell: CommandShell) -> None:
    def interrupt(group: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shell.try_run(as_bash_code("sleep 37"), timeout=0.2, display="sleep 37", on_line=None, kill_group=interrupt)
    assert not shell.usable
    subprocess.run(["pkill", "-f", "^sleep 37$"], check=True)  # what the machine's stop would end


def test_closing_with_a_wait_lets_the_shell_exit_first(shell: CommandShell) -> None:
    # What settle() does before a hang-up: sshd then has nothing left to send for the shell's channel.
    assert run(shell, "sleep 2 >/dev/null 2>&1 &").returncode == 0 and shell.usable
    shell.close(wait=5)
    channel = shell.channel
    assert not channel.closed_while_running and channel.exit_status_ready()  # type: ignore[attr-defined]
