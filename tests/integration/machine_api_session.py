"""Every Machine API method through the plugin's own fixtures, the same on every runner.

Not collected by itself: test_machine_api_runners.py copies it into a pytester session that runs it with
`--mkosi-runner=nspawn` (examples/minimal) or `--mkosi-runner=qemu` (examples/disk with sshd). The tests run
in file order on the session's one machine, as a session's tests share mkosi_machine: the reboot and the
crash in the middle must not break the tests after them. Timeouts are generous: under TCG a command takes
ten times as long as in a container.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from pytest_mkosi.machine import CommandFailed, CommandTimeout, Machine

SLOW = 120.0
PORT = 4711


def test_the_machine_is_running_cleanly(mkosi_machine: Machine) -> None:
    assert mkosi_machine.runner.kind == os.environ.get("API_EXPECTED_RUNNER", mkosi_machine.runner.kind)
    state = mkosi_machine.run("systemctl is-system-running --wait", timeout=SLOW).stdout.strip()
    assert state == "running", mkosi_machine.run("systemctl --failed --no-legend").stdout


def test_run_succeed_fail(mkosi_machine: Machine) -> None:
    result = mkosi_machine.run("echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert mkosi_machine.run("false | true").returncode == 1
    assert mkosi_machine.succeed(["echo", "a  b", "$HOME"]) == "a  b $HOME\n"
    assert "No such file" in mkosi_machine.fail("ls /nonexistent")
    with pytest.raises(CommandFailed, match="command failed"):
        mkosi_machine.succeed("exit 1")
    with pytest.raises(CommandFailed, match="unexpectedly succeeded"):
        mkosi_machine.fail("true")


def test_timeout_kills_the_command_and_its_children(mkosi_machine: Machine) -> None:
    with pytest.raises(CommandTimeout, match=r"sleep 913"):
        mkosi_machine.run("sleep 914 & sleep 913; echo never", timeout=3)
    mkosi_machine.wait_until_fails("pgrep -f 'sleep 91[34]'", timeout=30)
    with pytest.raises(CommandTimeout):
        mkosi_machine.succeed("sleep 915", timeout=2)
    with pytest.raises(CommandTimeout):
        mkosi_machine.fail("sleep 916", timeout=2)


def test_stream_logs_lines_as_they_come(mkosi_machine: Machine, caplog: pytest.LogCaptureFixture) -> None:
    arrived: list[float] = []

    class Clock(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "line " in record.getMessage():
                arrived.append(time.monotonic())

    handler = Clock()
    logging.getLogger("pytest_mkosi").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="pytest_mkosi"):
            out = mkosi_machine.succeed("for i in 1 2 3; do echo line $i; sleep 1; done", stream=True)
    finally:
        logging.getLogger("pytest_mkosi").removeHandler(handler)
    assert out == "line 1\nline 2\nline 3\n"
    lines = [r.getMessage().split(": ", 1)[1] for r in caplog.records if "line " in r.getMessage()]
    assert lines == ["line 1", "line 2", "line 3"]
    assert arrived[-1] - arrived[0] > 1.5  # logged while running, not all at the end


def test_waits_for_commands_and_files(mkosi_machine: Machine) -> None:
    mkosi_machine.succeed("(sleep 2; touch /run/api-flag) >/dev/null 2>&1 &")
    mkosi_machine.wait_for_file("/run/api-flag", timeout=SLOW)
    assert mkosi_machine.wait_until_succeeds("test -e /run/api-flag && echo yes", timeout=SLOW) == "yes\n"
    mkosi_machine.succeed("(sleep 2; rm /run/api-flag) >/dev/null 2>&1 &")
    mkosi_machine.wait_until_fails("test -e /run/api-flag", timeout=SLOW)
    with pytest.raises(CommandFailed, match="did not succeed within 2s"):
        mkosi_machine.wait_until_succeeds("false", timeout=2)


def test_units_ports_and_systemctl(mkosi_machine: Machine) -> None:
    mkosi_machine.wait_for_unit("multi-user.target", timeout=SLOW)
    mkosi_machine.wait_for_closed_port(PORT, timeout=SLOW)
    # A listener of systemd's own (nothing else needs to be in the image); --accept: one `true` per connection.
    mkosi_machine.succeed(["systemd-run", "--unit=api-port", "systemd-socket-activate", "--accept",
                           f"--listen=127.0.0.1:{PORT}", "true"])
    mkosi_machine.wait_for_unit("api-port.service", timeout=SLOW)
    mkosi_machine.wait_for_open_port(PORT, timeout=SLOW)
    assert mkosi_machine.unit_property("api-port.service", "ActiveState") == "active"
    assert int(mkosi_machine.unit_property("api-port.service", "MainPID")) > 1
    assert mkosi_machine.systemctl("is-active", "api-port.service").stdout == "active\n"
    mkosi_machine.systemctl("stop", "api-port.service")
    mkosi_machine.wait_for_closed_port(PORT, timeout=SLOW)
    assert mkosi_machine.systemctl("is-active", "api-port.service").returncode != 0
    with pytest.raises(CommandFailed, match="unknown here"):
        mkosi_machine.wait_for_unit("no-such-thing.service", timeout=SLOW)


def test_journal_and_cursor(mkosi_machine: Machine) -> None:
    cursor = mkosi_machine.journal_cursor()
    mkosi_machine.succeed("systemd-cat -t api-test -p warning echo hello-journal")
    mkosi_machine.wait_until_succeeds("journalctl -t api-test | grep -q hello-journal", timeout=SLOW)
    mine = [e for e in mkosi_machine.journal(since=cursor) if e.get("SYSLOG_IDENTIFIER") == "api-test"]
    assert [e["MESSAGE"] for e in mine] == ["hello-journal"] and mine[0]["PRIORITY"] == "4"
    assert all(int(e["PRIORITY"]) <= 4 for e in mkosi_machine.journal(since=cursor, priority="warning"))
    assert mkosi_machine.journal(unit="multi-user.target")


def test_copy_to_and_from(mkosi_machine: Machine, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/run.sh").write_text("#!/bin/sh\necho hi\n")
    (tree / "sub/run.sh").chmod(0o755)
    (tree / "data").write_bytes(os.urandom(200_000))
    (tree / "link").symlink_to("sub/run.sh")
    mkosi_machine.copy_to(tree, "/run/api-tree")
    assert mkosi_machine.succeed("/run/api-tree/link") == "hi\n"
    back = tmp_path / "back"
    mkosi_machine.copy_from("/run/api-tree", back)
    assert (back / "data").read_bytes() == (tree / "data").read_bytes()
    assert os.readlink(back / "link") == "sub/run.sh" and (back / "sub/run.sh").stat().st_mode & 0o777 == 0o755


def test_console(mkosi_machine: Machine) -> None:
    console = mkosi_machine.console
    assert "login:" in console.console_log()
    console.skip_to_end()
    console.send_console("\n")
    # getty answers Enter with a new prompt.
    console.wait_for_console_text(r"\S+ login: ", timeout=SLOW)
    console.send_console("nosuchuser\n")
    console.wait_for_console_text(r"nosuchuser", timeout=SLOW)


def test_ssh_and_ssh_command(mkosi_machine: Machine, mkosi_ssh: paramiko.SSHClient) -> None:
    _, stdout, _ = mkosi_ssh.exec_command("echo from-paramiko")
    assert stdout.read() == b"from-paramiko\n"
    command = mkosi_machine.ssh_command()
    # A virtio-serial port carries one stream: the runner lets go of it while OpenSSH uses it.
    release = getattr(mkosi_machine.runner, "release_ssh", None)
    if release is not None:
        release()
    try:
        result = subprocess.run([*shlex.split(command), "echo from-openssh"], capture_output=True, text=True,
                                timeout=SLOW, stdin=subprocess.DEVNULL, check=False)
    finally:
        if release is not None:
            mkosi_machine.runner.reconnect()  # type: ignore[attr-defined]
    assert result.stdout == "from-openssh\n", result.stderr


def test_reboot(mkosi_machine: Machine) -> None:
    before = mkosi_machine.boot_id()
    mkosi_machine.reboot()
    assert mkosi_machine.boot_id() != before
    mkosi_machine.console.wait_for_console_text(r"\S+ login: ", timeout=SLOW)  # the new boot's prompt


def test_after_the_reboot_a_later_test_still_works(mkosi_machine: Machine) -> None:
    assert mkosi_machine.succeed("echo still here") == "still here\n"
    state = mkosi_machine.run("systemctl is-system-running --wait", timeout=SLOW).stdout.strip()
    assert state == "running", mkosi_machine.run("systemctl --failed --no-legend").stdout


def test_crash_then_start_again(mkosi_machine: Machine) -> None:
    before = mkosi_machine.boot_id()
    mkosi_machine.crash()
    assert not mkosi_machine.is_running
    with pytest.raises(ConnectionError, match="start"):
        mkosi_machine.run("true")
    mkosi_machine.start()
    assert mkosi_machine.is_running and mkosi_machine.boot_id() != before
    assert mkosi_machine.succeed("echo back") == "back\n"
