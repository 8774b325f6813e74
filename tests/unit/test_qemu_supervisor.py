"""runners/qemu_supervisor.py's decisions with a fake qemu (no process): the session's end stops qemu unless
the machine is kept, SIGTERM stops it, a qemu that does not stop is killed at the deadline, and events to a
session that is gone are dropped. Also the runtime records a kept machine's stop removes (machine/state.py)."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
from pathlib import Path

import pytest

from pytest_mkosi.machine import state
from pytest_mkosi.runners import qemu_supervisor as sup


class FakeQemu:
    """Exits when told (its exit fd becomes readable), or at terminate() when `obeys`."""

    def __init__(self, *, obeys: bool = True) -> None:
        self.pid = 4242
        self.obeys = obeys
        self.calls: list[str] = []
        self.status: int | None = None
        self.exit_read, self._exit_write = os.pipe()

    def exit(self, status: int) -> None:
        self.status = status
        os.close(self._exit_write)

    def poll(self) -> int | None:
        return self.status

    def terminate(self) -> None:
        self.calls.append("terminate")
        if self.obeys:
            self.exit(0)

    def kill(self) -> None:
        self.calls.append("kill")
        self.exit(-9)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pipes() -> tuple[int, int, int, int]:
    """(session read end, session write end, events read end, events write end)."""
    session = os.pipe()
    events = os.pipe()
    return session[0], session[1], events[0], events[1]


def supervisor(tmp_path: Path, qemu: FakeQemu, pipes: tuple[int, int, int, int], clock: Clock | None = None
               ) -> sup.Supervisor:
    return sup.Supervisor(qemu, qemu.exit_read, state_dir=tmp_path, session_fd=pipes[0],
                          events=sup.Events(pipes[3]), clock=clock or Clock())


def events(fd: int) -> list[dict[str, object]]:
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        data = b""
    return [json.loads(line) for line in data.decode().splitlines()]


def test_the_kept_marker_is_machine_states() -> None:
    assert sup.KEPT == state.KEPT


def test_the_sessions_end_stops_qemu(tmp_path: Path, pipes: tuple[int, int, int, int]) -> None:
    qemu = FakeQemu()
    s = supervisor(tmp_path, qemu, pipes)
    os.write(pipes[1], b"x")
    s.on_session()
    assert qemu.calls == []  # data, not EOF: the session is still there
    os.close(pipes[1])
    s.on_session()
    assert qemu.calls == ["terminate"] and s.session_fd is None


def test_a_kept_machine_outlives_the_session_and_its_events_are_dropped(
        tmp_path: Path, pipes: tuple[int, int, int, int]) -> None:
    (tmp_path / state.KEPT).write_text("1\n")
    qemu = FakeQemu()
    s = supervisor(tmp_path, qemu, pipes)
    os.close(pipes[1])
    s.on_session()
    assert qemu.calls == [] and s.deadline is None
    os.close(pipes[2])  # the session's end of the events is gone too
    s.events.send(event="exited", status=0)  # EPIPE: dropped, no error
    assert s.events.fd is None


def test_a_kept_machines_readiness_port_is_read_in_the_sessions_place(
        tmp_path: Path, pipes: tuple[int, int, int, int]) -> None:
    """The guest's announcement of each new sshd blocks while no host reads the port: a kept machine's
    supervisor reads it once the session is gone, and connects again when qemu hung up."""
    (tmp_path / state.KEPT).write_text("1\n")
    port = tmp_path / "ready.sock"
    qemu_end = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    qemu_end.bind(str(port))
    qemu_end.listen(1)
    s = sup.Supervisor(FakeQemu(), -1, state_dir=tmp_path, session_fd=pipes[0], events=sup.Events(pipes[3]),
                       ready_socket=port)
    assert s.ready is None
    os.close(pipes[1])
    s.on_session()
    assert s.ready is not None
    guest, _ = qemu_end.accept()
    guest.sendall(b"boot-id\n")
    assert select.select([s.ready], [], [], 5)[0]
    s.read_readiness()
    first = s.ready
    assert first is not None
    guest.close()  # qemu hung up (the runner of before, say): the next read connects again
    assert select.select([s.ready], [], [], 5)[0]
    s.read_readiness()
    again, _ = qemu_end.accept()
    assert s.ready is not None and s.ready is not first
    again.sendall(b"next\n")
    assert select.select([s.ready], [], [], 5)[0]
    s.read_readiness()
    again.close()
    qemu_end.close()


def test_a_qemu_that_does_not_stop_is_killed_at_the_deadline(tmp_path: Path,
                                                             pipes: tuple[int, int, int, int]) -> None:
    clock = Clock()
    qemu = FakeQemu(obeys=False)
    s = supervisor(tmp_path, qemu, pipes, clock)
    s.stop()  # SIGTERM's handler
    s.stop()  # a second SIGTERM does not move the deadline or signal again
    assert qemu.calls == ["terminate"]
    clock.now += sup.STOP_GRACE - 1
    s.on_deadline()
    assert qemu.calls == ["terminate"]
    clock.now += 1
    s.on_deadline()
    assert qemu.calls == ["terminate", "kill"] and s.killed


def test_run_reports_qemu_and_returns_its_status(tmp_path: Path, pipes: tuple[int, int, int, int]) -> None:
    qemu = FakeQemu()
    s = supervisor(tmp_path, qemu, pipes)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(s.run()))
    thread.start()
    qemu.exit(3)  # the guest powered off (or crashed) by itself
    thread.join(10)
    assert result == [3] and qemu.calls == []
    assert events(pipes[2]) == [{"event": "spawned", "pid": 4242}, {"event": "exited", "status": 3}]


def test_run_stops_qemu_when_the_session_ends(tmp_path: Path, pipes: tuple[int, int, int, int]) -> None:
    qemu = FakeQemu()
    s = supervisor(tmp_path, qemu, pipes)
    thread = threading.Thread(target=s.run)
    thread.start()
    os.close(pipes[1])  # the session ended (even SIGKILL closes its end)
    thread.join(10)
    assert not thread.is_alive() and qemu.calls == ["terminate"]


def test_stop_removes_only_the_records_that_name_the_machine(tmp_path: Path) -> None:
    machine = tmp_path / "machine"
    machine.mkdir()
    (machine / state.PROCESSES).write_text("999999991 1\n999999992 1\n")
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    ours.write_text(json.dumps({"pid": 999999992}))
    theirs.write_text(json.dumps({"pid": os.getpid()}))  # a later `imagebuild boot` wrote it meanwhile
    state.note_runtime_record(machine, ours)
    state.note_runtime_record(machine, theirs)
    state.note_runtime_record(machine, tmp_path / "gone.json")
    state.reap(machine, grace=0.1)
    assert not machine.exists() and not ours.exists() and theirs.exists()
