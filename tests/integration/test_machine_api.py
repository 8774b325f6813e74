"""Every Machine API method on a real nspawn machine of examples/minimal (the tests run in file order and
share one machine, as a session's tests share mkosi_machine; the reboot in the middle must not break the
tests after it)."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.config import Overrides
from pytest_mkosi.images import BuiltImage, ImageCache, resolve_configs
from pytest_mkosi.machine import CommandFailed, CommandTimeout, Machine
from pytest_mkosi.machine.state import _descendants, unique_machine_name
from pytest_mkosi.runners.nspawn import NspawnRunner
from tests.helpers import MINIMAL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    return ImageCache().get(resolve_configs(MINIMAL, Overrides())[-1])


@pytest.fixture(scope="module")
def runner(image: BuiltImage) -> Iterator[NspawnRunner]:
    runner = NspawnRunner(image.config, image.path, name=unique_machine_name("api"))
    try:
        runner.start(timeout=120)
        yield runner
    finally:
        runner.stop()
    assert not runner.state_dir.exists()


@pytest.fixture(scope="module")
def machine(runner: NspawnRunner) -> Machine:
    machine = Machine(runner, command_timeout=60)
    assert machine.succeed("systemctl is-system-running --wait").strip() == "running"
    return machine


def test_run_succeed_fail(machine: Machine) -> None:
    result = machine.run("echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.command == "echo out; echo err >&2; exit 3" and result.duration > 0
    # Strings run with -e and pipefail; lists run as is, their words quoted.
    assert machine.run("false; echo not reached").stdout == ""
    assert machine.run("false | true").returncode == 1
    assert machine.succeed(["echo", "a  b", "$HOME"]) == "a  b $HOME\n"
    assert "No such file" in machine.fail("ls /nonexistent")


def test_timeout_kills_the_command_and_its_children_in_the_guest(machine: Machine) -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"within 2s.*sleep 913") as info:
        machine.run("sleep 914 & sleep 913; echo never", timeout=2)
    assert isinstance(info.value, AssertionError)
    assert time.monotonic() - started < 6
    assert machine.run("pgrep -f 'sleep 91[34]'").returncode == 1, machine.run("ps -ef").stdout


def test_background_process_keeping_stdout_open_does_not_hang(machine: Machine) -> None:
    started = time.monotonic()
    result = machine.run("sleep 30 & echo started")
    assert result.stdout == "started\n" and result.returncode == 0
    assert time.monotonic() - started < 1.0
    machine.succeed("pkill -f '^sleep 30$' || true")


def test_commands_share_one_bash_but_none_of_its_state(machine: Machine) -> None:
    # The connection's command shell (transport/command_shell.py) runs them: the same $$ each time.
    shells = {machine.succeed("echo $$") for _ in range(3)}
    assert len(shells) == 1
    machine.succeed("cd /tmp; X=1; export Y=2; trap 'echo trapped' EXIT; set -u")
    assert machine.succeed('pwd; echo "${X-unset} ${Y-unset}"') == "/root\nunset unset\n"
    # A process that keeps the output open leaves with its shell: later commands see nothing of it.
    machine.succeed("(sleep 0.5; echo stray) &")
    assert machine.succeed("sleep 1; echo mine") == "mine\n"
    assert machine.succeed("echo $$") not in shells


def test_commands_from_several_threads_at_once(machine: Machine) -> None:
    results: dict[int, str] = {}

    def run(i: int) -> None:
        results[i] = machine.succeed(f"sleep 0.3; echo {i}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {i: f"{i}\n" for i in range(4)}


def test_stream_writes_lines_to_the_log_as_they_come(machine: Machine, caplog: pytest.LogCaptureFixture) -> None:
    arrived: list[float] = []

    class Clock(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            arrived.append(time.monotonic())

    handler = Clock()
    logging.getLogger("pytest_mkosi").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="pytest_mkosi"):
            machine.succeed("for i in 1 2 3; do echo line $i; sleep 0.5; done", stream=True)
    finally:
        logging.getLogger("pytest_mkosi").removeHandler(handler)
    lines = [r.getMessage() for r in caplog.records if "line " in r.getMessage()]
    assert [line.split(": ", 1)[1] for line in lines] == ["line 1", "line 2", "line 3"]
    assert arrived[-1] - arrived[0] > 0.8  # logged while running, not all at the end


def test_waits(machine: Machine) -> None:
    machine.succeed("(sleep 1; touch /tmp/flag) >/dev/null 2>&1 &")
    machine.wait_for_file("/tmp/flag", timeout=10)
    assert machine.wait_until_succeeds("test -e /tmp/flag && echo yes", timeout=5) == "yes\n"
    machine.succeed("(sleep 1; rm /tmp/flag) >/dev/null 2>&1 &")
    machine.wait_until_fails("test -e /tmp/flag", timeout=10)
    with pytest.raises(CommandFailed, match="did not succeed within 1s"):
        machine.wait_until_succeeds("false", timeout=1)


def test_ports(machine: Machine) -> None:
    # The image's own sshd listens on 22 inside the container's network namespace.
    machine.wait_for_open_port(22, timeout=10)
    machine.wait_for_closed_port(4711, timeout=5)
    with pytest.raises(CommandFailed):
        machine.wait_for_open_port(4711, timeout=1)


def test_guest_services_do_not_listen_on_the_host(machine: Machine) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", 22))
        except OSError:
            pytest.skip("something on the host holds port 22 already")
    assert "host0" not in machine.succeed("ip -o link 2>/dev/null || cat /proc/net/dev")


def test_units(machine: Machine) -> None:
    machine.wait_for_unit("multi-user.target", timeout=30)
    assert machine.unit_property("ssh.service", "ActiveState") == "active"
    assert machine.systemctl("is-active", "ssh.service").stdout == "active\n"
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="unknown here"):
        machine.wait_for_unit("no-such-thing.service", timeout=30)
    machine.succeed("systemd-run --unit=doomed.service --service-type=oneshot false || true")
    with pytest.raises(CommandFailed, match="'failed'"):
        machine.wait_for_unit("doomed.service", timeout=30)
    with pytest.raises(CommandFailed, match="no job is pending"):
        machine.wait_for_unit("systemd-networkd-wait-online.service", timeout=30)
    assert time.monotonic() - started < 10  # failures are reported at once, not after the timeout


def test_journal(machine: Machine) -> None:
    cursor = machine.journal_cursor()
    machine.succeed("systemd-cat -t api-test -p err echo hello-journal")
    machine.wait_until_succeeds("journalctl -t api-test | grep -q hello-journal", timeout=10)
    entries = machine.journal(since=cursor)
    mine = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "api-test"]
    assert [e["MESSAGE"] for e in mine] == ["hello-journal"] and mine[0]["PRIORITY"] == "3"
    assert all("__CURSOR" in e for e in entries)
    assert all(int(e["PRIORITY"]) <= 3 for e in machine.journal(priority="err"))
    ssh = machine.journal(unit="ssh.service")
    # The unit's own messages, and systemd's about it (UNIT=); structured fields kept.
    assert ssh and all("ssh.service" in (e.get("_SYSTEMD_UNIT"), e.get("UNIT")) for e in ssh)
    assert any(e.get("_SYSTEMD_UNIT") == "ssh.service" for e in ssh)
    assert any(e.get("MESSAGE_ID") for e in ssh)


def test_copy_files_and_trees(machine: Machine, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/run.sh").write_text("#!/bin/sh\necho hi\n")
    (tree / "sub/run.sh").chmod(0o755)
    (tree / "data").write_bytes(bytes(range(256)) * 100)
    (tree / "link").symlink_to("sub/run.sh")
    machine.copy_to(tree, "/root/tree")
    assert machine.succeed("/root/tree/link") == "hi\n"
    assert machine.succeed("stat -c %a /root/tree/sub/run.sh") == "755\n"
    back = tmp_path / "back"
    machine.copy_from("/root/tree", back)
    assert (back / "data").read_bytes() == (tree / "data").read_bytes()
    assert os.readlink(back / "link") == "sub/run.sh" and (back / "sub/run.sh").stat().st_mode & 0o777 == 0o755
    machine.copy_from("/etc/hostname", tmp_path / "hostname")
    assert (tmp_path / "hostname").read_text() == "minimal\n"


def test_console(machine: Machine) -> None:
    assert "Reached target" in machine.console.console_log()
    machine.console.send_console("\n")
    machine.console.wait_for_console_text(r"minimal login: ", timeout=20)
    machine.console.send_console("nosuchuser\n")
    # The guest's tty echoes what was typed and its getty answers with a new prompt (or a password one).
    machine.console.wait_for_console_text(r"nosuchuser", timeout=20)
    machine.console.wait_for_console_text(r"Password: |minimal login: ", timeout=20)


def test_ssh_command_is_pasteable(machine: Machine) -> None:
    command = machine.ssh_command()
    result = subprocess.run([*shlex.split(command), "cat /etc/hostname"], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.stdout == "minimal\n", result.stderr
    assert machine.ssh.exec_command("true")[1].channel.recv_exit_status() == 0


def test_image_is_not_written_and_state_is_0600(machine: Machine, runner: NspawnRunner) -> None:
    machine.succeed("echo changed > /etc/changed-by-test")
    assert not (runner.tree / "etc/changed-by-test").exists()
    assert (runner.state_dir / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert runner.state_dir.stat().st_mode & 0o777 == 0o700


def test_reboot_keeps_state_and_reconnects(machine: Machine) -> None:
    before = machine.boot_id()
    machine.succeed("echo survives > /root/state")
    machine.reboot()
    assert machine.boot_id() != before
    assert machine.succeed("cat /root/state") == "survives\n"
    assert machine.succeed("systemctl is-system-running --wait").strip() == "running"


def test_after_the_reboot_a_later_test_still_works(machine: Machine) -> None:
    assert machine.succeed("hostname").strip() == "minimal"
    machine.console.wait_for_console_text(r"minimal login: ", timeout=20)  # the new boot's prompt


def test_a_reboot_from_inside_a_test_is_survived_too(machine: Machine, runner: NspawnRunner) -> None:
    before = machine.boot_id()
    # The connection may go down before the command's own end arrives: that is the reboot, not a failure.
    with contextlib.suppress(ConnectionError):
        machine.run("systemctl --no-block reboot")
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(ConnectionError, EOFError, OSError, CommandTimeout):
            if machine.boot_id() != before:
                break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert machine.is_running


def test_shutdown_then_start(machine: Machine) -> None:
    machine.shutdown(timeout=30)
    assert not machine.is_running
    with pytest.raises(ConnectionError, match="start"):
        machine.run("true")
    machine.start()
    assert machine.succeed("cat /root/state") == "survives\n"


def test_crash_is_a_hard_power_off(machine: Machine, runner: NspawnRunner) -> None:
    nspawn = [int(pid) for pid in subprocess.run(["pgrep", "-f", f"systemd-nspawn.*--machine={runner.name}"],
                                                 capture_output=True, text=True).stdout.split()]
    assert len(nspawn) == 1
    container = _descendants(nspawn[0])  # the container's init and everything in it
    assert len(container) > 5
    started = time.monotonic()
    machine.crash()
    assert not machine.is_running and time.monotonic() - started < 5
    left = [pid for pid in [*nspawn, *container] if Path(f"/proc/{pid}").exists()]
    assert left == [], [(Path(f"/proc/{p}/stat").read_text()) for p in left]
    machine.start()
    assert machine.succeed("hostname").strip() == "minimal"
