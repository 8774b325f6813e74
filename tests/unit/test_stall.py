"""A boot whose guest kernel lost its timer (runners/stall.py): told from the console as it is written, and
the qemu runner boots again once instead of waiting out its timeout (the process layer is faked here; a real
lost timer cannot be caused on purpose). A qemu that crashed is booted again the same way, and one that exited
otherwise is reported with its status and its last words."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from imagebuild.errors import RunError
from pytest_mkosi.runners import qemu_boot, stall
from pytest_mkosi.runners.qemu import QemuRunner
from pytest_mkosi.runners.qemu_boot import QemuCrashed, SupervisedBoot
from pytest_mkosi.runners.readiness import ReadyPort
from pytest_mkosi.runners.stall import GuestStalled, StallWatch
from tests.unit.test_qemu_runner import disk_config

# What the CI host's guest printed (trimmed), and a plain stall of an overloaded guest that still boots.
LOST = ("[  421.414520] rcu: rcu_preempt kthread timer wakeup didn't happen for 15752 jiffies! g-1135 f0x0\n"
        "[  421.417590] rcu: \tPossible timer handling issue on cpu=1 timer-softirq=1\n")
SLOW = "[   44.1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n[   44.2] rcu: \t1-...!: (0 ticks this GP)\n"


@pytest.fixture(autouse=True)
def every_call_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stall, "CHECK_INTERVAL", 0.0)


def test_watch_sees_only_what_the_log_gains_and_only_a_lost_timer(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text(LOST)  # an earlier boot's
    watch = StallWatch(log)
    watch.check()
    with log.open("a") as f:
        f.write(SLOW + "[   45.0] systemd[1]: Started foo.service\n")
    watch.check()
    with log.open("a") as f:
        f.write(LOST[:40])  # half a line: not yet
    watch.check()
    with log.open("a") as f:
        f.write(LOST[40:])
    with pytest.raises(GuestStalled, match=r"lost a timer interrupt.*timer wakeup didn't happen") as stalled:
        watch.check()
    assert stalled.value.since == len(LOST)  # where this boot's output begins


def test_watch_of_a_log_not_yet_written(tmp_path: Path) -> None:
    watch = StallWatch(tmp_path / "console.log")
    watch.check()
    (tmp_path / "console.log").write_text(LOST)
    with pytest.raises(GuestStalled):
        watch.check()


def test_ready_port_wait_ends_when_the_check_raises(tmp_path: Path) -> None:
    path = tmp_path / "ready.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
    thread.start()
    port = ReadyPort(path)
    port.connect(deadline=time.monotonic() + 5, alive=lambda: True)
    log = tmp_path / "console.log"
    watch = StallWatch(log)
    log.write_text(LOST)
    started = time.monotonic()
    with pytest.raises(GuestStalled):
        port.wait_boot(other_than=None, deadline=time.monotonic() + 30, alive=lambda: True, check=watch.check)
    assert time.monotonic() - started < 5
    port.close()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


class FakeState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.removed = False

    def remove(self) -> None:
        self.removed = True


def runner_for(tmp_path: Path) -> QemuRunner:
    config, image = disk_config(tmp_path)
    return QemuRunner(config, image, name="m", state_parent=tmp_path / "machines")


def test_a_stalled_first_boot_starts_again_from_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = runner_for(tmp_path)
    states: list[FakeState] = []

    def boot_once(started: float, deadline: float) -> None:
        assert runner._state is None  # a fresh machine each time: the stalled one was stopped
        states.append(FakeState(tmp_path))
        runner._state = states[-1]  # type: ignore[assignment]
        if len(states) == 1:
            raise GuestStalled("rcu: rcu_preempt kthread timer wakeup didn't happen")

    monkeypatch.setattr(runner, "_boot_once", boot_once)
    runner.start()
    assert len(states) == 2 and states[0].removed and not states[1].removed
    assert runner.stalled_boots == 1


def test_a_stalled_restart_keeps_its_overlay_and_two_stalls_fail(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    runner = runner_for(tmp_path)
    state = FakeState(tmp_path)
    runner._state = state  # type: ignore[assignment]
    console = tmp_path / "console.log"
    console.write_text("the boot before the crash\n")
    calls: list[str] = []

    def boot_once(started: float, deadline: float) -> None:
        calls.append("boot")
        assert not state.removed  # power_off_hard() between the two, not stop()
        watch = StallWatch(console)
        with console.open("a") as f:
            f.write(f"boot {len(calls)}\n{LOST}")
        watch.check()

    monkeypatch.setattr(runner, "_boot_once", boot_once)
    with pytest.raises(RunError, match=r"did not come up: .*timer wakeup.*\(booted 2 times\)"):
        runner.start()
    assert calls == ["boot", "boot"] and runner.stalled_boots == 1 and state.removed
    # The first cut boot's console went aside (the badness gate would read it as the OS's fault); the
    # last one, which made the start fail, stays for the error and the evidence.
    assert console.read_text() == f"the boot before the crash\nboot 2\n{LOST}"
    assert (tmp_path / "console.stalled.log").read_text() == f"boot 1\n{LOST}"


class FakeSupervisor:
    """A supervisor process whose event stream is `events` (closed: qemu's exit reported)."""

    def __init__(self, events: object) -> None:
        self.stdout = events

    def wait(self) -> int:
        return 0


def gone_boot(tmp_path: Path, status: int, printed: str) -> SupervisedBoot:
    (tmp_path / "qemu.log").write_text(printed)
    boot = SupervisedBoot(FakeSupervisor([]), FakeState(tmp_path))  # type: ignore[arg-type]
    assert boot.wait(5)
    boot.returncode = status
    return boot


def test_qemu_killed_by_a_crash_signal_is_a_crash_with_its_last_words(tmp_path: Path) -> None:
    boot = gone_boot(tmp_path, -signal.SIGSEGV, "qemu-system-x86_64: warning: one\n\nline two\n")
    assert boot.crashed()
    with pytest.raises(QemuCrashed, match=r"killed by SIGSEGV; it printed:\n    qemu-system-x86_64: warning: one\n"
                                          r"    line two$") as crash:
        boot.raise_if_gone(ConnectionError("qemu closed the readiness port"), since=7)
    assert crash.value.since == 7


def test_qemu_that_exited_or_was_stopped_is_no_crash_and_the_error_says_how(tmp_path: Path) -> None:
    boot = gone_boot(tmp_path, 1, "qemu-system-x86_64: -device vhost-user-fs-pci: Failed to connect\n")
    assert not boot.crashed()
    with pytest.raises(ConnectionError, match=r"^qemu closed the readiness port; qemu exited with status 1; it "
                                              r"printed:\n    qemu-system-x86_64: -device vhost-user-fs-pci"):
        boot.raise_if_gone(ConnectionError("qemu closed the readiness port"), since=0)
    with pytest.raises(ConnectionError, match=r"^TimeoutError; qemu exited with status 1"):
        boot.raise_if_gone(TimeoutError(), since=0)  # an error with no words is named by its type
    killed = gone_boot(tmp_path, -signal.SIGKILL, "")
    assert not killed.crashed() and killed.exit_report() == "qemu was killed by SIGKILL (it printed nothing)"


def test_an_error_while_qemu_runs_is_left_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu_boot, "EXIT_REPORT_WAIT", 0.05)
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as events:
        boot = SupervisedBoot(FakeSupervisor(events), FakeState(tmp_path))  # type: ignore[arg-type]
        boot.raise_if_gone(ConnectionError("the SSH socket closed"), since=0)  # returns: not qemu's doing
        os.close(write_end)
        assert boot.wait(5)


def test_a_first_boot_whose_qemu_crashed_starts_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = runner_for(tmp_path)
    states: list[FakeState] = []

    def boot_once(started: float, deadline: float) -> None:
        states.append(FakeState(tmp_path))
        runner._state = states[-1]  # type: ignore[assignment]
        raise QemuCrashed(f"qemu was killed by SIGABRT (boot {len(states)})")

    monkeypatch.setattr(runner, "_boot_once", boot_once)
    with pytest.raises(RunError, match=r"did not come up: qemu was killed by SIGABRT \(boot 2\) \(booted 2 times\)"):
        runner.start()
    assert len(states) == 2 and all(s.removed for s in states) and runner.stalled_boots == 1
