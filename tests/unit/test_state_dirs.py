"""Machine state directories: locked while used, reaped when their session dies (even by SIGKILL), swept."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagebuild.errors import RunError
from pytest_mkosi.machine import state as state_module
from pytest_mkosi.machine.state import (
    CGROUPS,
    KEPT,
    LOCK,
    PROCESSES,
    StateDir,
    recorded_processes,
    sweep,
    unique_machine_name,
)

SESSION = """
import subprocess, sys, time
from pathlib import Path
from pytest_mkosi.machine.state import StateDir
state = StateDir.create("m1", Path(sys.argv[1]))
(state.path / "id_ed25519").write_text("secret")
child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
state.record_process(child.pid)
print(child.pid, flush=True)
time.sleep(1000)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


def wait_until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_sigkilled_session_leaves_no_process_and_no_key(tmp_path: Path) -> None:
    session = subprocess.Popen([sys.executable, "-c", SESSION, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert session.stdout is not None
    child = int(session.stdout.readline())
    directory = tmp_path / "m1"
    assert (directory / "id_ed25519").exists() and recorded_processes(directory) == [child]
    session.send_signal(signal.SIGKILL)
    session.wait()
    assert wait_until(lambda: not directory.exists(), 10), list(directory.iterdir())
    assert wait_until(lambda: not alive(child), 5)


def test_a_directory_in_use_is_locked_and_not_swept(tmp_path: Path) -> None:
    state = StateDir.create("busy", tmp_path)
    fd = os.open(state.path / LOCK, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = False
        except BlockingIOError:
            locked = True
    finally:
        os.close(fd)
    assert locked
    assert sweep(tmp_path) == []
    assert state.path.is_dir() and oct(state.path.stat().st_mode & 0o777) == "0o700"
    state.remove()
    assert not state.path.exists()


def test_stale_directories_are_swept_at_the_next_start(tmp_path: Path) -> None:
    stale = tmp_path / "old-machine"
    stale.mkdir()
    (stale / LOCK).write_text("12345\n")  # nobody holds it
    (stale / "id_ed25519").write_text("secret")
    hidden = tmp_path / ".being-made"  # a directory another session is still setting up
    hidden.mkdir()
    state = StateDir.create("new", tmp_path)
    try:
        assert not stale.exists()
        assert hidden.exists()
    finally:
        state.remove()


def test_machine_names_are_unique_and_valid() -> None:
    names = {unique_machine_name("a-very-long-image-name-" * 4) for _ in range(3)}
    assert len(names) == 3
    assert all(len(n) <= 64 and "--" not in n for n in names)


def test_a_name_in_use_or_unfit_for_socket_paths_is_refused(tmp_path: Path) -> None:
    state = StateDir.create("machine-one", tmp_path)
    try:
        with pytest.raises(RunError, match="already running"):
            StateDir.create("machine-one", tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == ["machine-one"]
    finally:
        state.remove()
    for name in ("machine one", "../escape", "x" * 65, ""):
        with pytest.raises(ValueError, match="machine name"):
            StateDir.create(name, tmp_path)


def test_the_sweep_kills_recorded_processes_but_not_a_reused_pid(tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / LOCK).write_text("")
    sleeper = subprocess.Popen(["sleep", "300"])
    # The pid of a process that is not the one recorded (another start time): the pid was reused.
    bystander = subprocess.Popen(["sleep", "300"])
    start = Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    (stale / PROCESSES).write_text(f"{sleeper.pid} {start}\n{bystander.pid} 1\n")
    try:
        assert sweep(tmp_path) == [stale]
        assert sleeper.wait(10) == -signal.SIGTERM
        assert bystander.poll() is None
        assert not stale.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_kept_machine_is_not_swept_while_it_runs_and_its_cgroups_go_with_it(tmp_path: Path) -> None:
    parent = tmp_path / "state"
    kept = parent / "kept"
    kept.mkdir(parents=True)
    (kept / LOCK).write_text("")  # its session is gone: nobody holds the lock
    (kept / KEPT).write_text("1\n")
    cgroup = tmp_path / "cgroupfs" / "imagebuild-kept"
    (cgroup / "payload" / "init.scope").mkdir(parents=True)
    (kept / CGROUPS).write_text(f"{cgroup}\n")
    machine = subprocess.Popen(["sleep", "300"])
    start = Path(f"/proc/{machine.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    (kept / PROCESSES).write_text(f"{machine.pid} {start}\n")
    try:
        assert sweep(parent) == [] and kept.is_dir() and machine.poll() is None
        machine.kill()
        machine.wait()
        # Stopped (by itself, or killed): the next sweep removes what it left, its cgroups too.
        assert sweep(parent) == [kept]
        assert not kept.exists() and not cgroup.exists()
    finally:
        machine.kill()
        machine.wait()


def test_stop_command_stops_a_kept_machine_and_removes_its_state(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / KEPT).write_text("1\n")
    machine = subprocess.Popen(["sleep", "300"])
    start = Path(f"/proc/{machine.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    (kept / PROCESSES).write_text(f"{machine.pid} {start}\n")
    script = Path(state_module.__file__)
    try:
        done = subprocess.run([sys.executable, "-I", str(script), "stop", str(kept)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and "stopped the machine" in done.stdout
        assert machine.wait(10) == -signal.SIGTERM and not kept.exists()
        wrong = subprocess.run([sys.executable, "-I", str(script), "stop", str(tmp_path / "nothing")],
                               capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 2 and "usage" in wrong.stderr
    finally:
        machine.kill()
        machine.wait()
