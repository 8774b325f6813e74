"""Fresh machines without a machine: the evidence Watch across a restore, a save that finds no sshd, and a
restore whose saved session cannot be replayed (runners/snapshot.py, qemu_snapshots.py); the replay itself
is tests/unit/test_session_replay.py."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from imagebuild.errors import RunError
from imagebuild.launch.ssh_keys import make_keys
from pytest_mkosi.evidence.collect import Watch
from pytest_mkosi.runners.snapshot import SnapshotError, SshPort, read_available, save_with_session
from pytest_mkosi.transport.replay import SessionRecord


def entry(cursor: str, message: str) -> str:
    return json.dumps({"__CURSOR": cursor, "MESSAGE": message}) + "\n"


def test_a_restore_starts_the_slice_at_the_restored_journal_and_keeps_the_saved_boot(tmp_path: Path) -> None:
    from tests.unit.fake_machines import machine_answering

    journal = {"tail": "s2"}
    seen: list[str] = []

    def respond(line: str) -> tuple[int, str, str]:
        seen.append(line)
        if "--lines=1" in line:  # Watch.restored(): the restored journal's last entry
            return 0, entry(journal["tail"], "last before the save"), ""
        if "journalctl" in line:
            return 0, entry("s9", "a test's entry") + "--pytest-mkosi-evidence--\n", ""
        return 1, "", "not here"

    (tmp_path / "console.log").write_text("boot console\n")
    machine = machine_answering(tmp_path, respond)
    watch = Watch(machine)
    watch.saved()  # saved at boot, before the boot's evidence was collected
    boot = watch.collect_boot(timeout=1)
    assert watch.current_boot is boot and watch.cursor == "s9"
    watch.collect()  # a test ran after the save
    with (tmp_path / "console.log").open("a") as console:
        console.write("the restore's console\n")
    watch.restored()
    # Not s9: the restored journal has no such entry (it numbers its entries again from the save).
    assert watch.cursor == "s2" and watch.restores == 1
    assert watch.offset == (tmp_path / "console.log").stat().st_size
    assert not watch.boot_pending and watch.current_boot is boot
    seen.clear()
    found = watch.collect()
    assert any("--after-cursor=s2" in line for line in seen), seen
    assert found.console == ""  # the restore's console belongs to no test


def test_no_banner_is_a_clear_error_and_leftovers_are_drained(tmp_path: Path) -> None:
    server, client = socket.socketpair()
    with server, client:
        server.sendall(b"noise from the machine of before the load")
        assert read_available(client) == b"noise from the machine of before the load"
        assert read_available(client) == b""
    # An old session's bytes are not a banner to save with the machine (every restore would replay them).
    server, client = socket.socketpair()
    with server:
        server.sendall(b"\x00\x00\x01\x0cthe end of an old session")
        port = SshPort(None, lambda: client, "ibssh")  # type: ignore[arg-type]  # no save is reached
        with pytest.raises(SnapshotError, match="no sshd answered"):
            save_with_session(port, "fresh", make_keys(tmp_path), deadline=time.monotonic() + 0.5)


def test_a_saved_session_that_cannot_be_replayed_gives_way_to_a_fresh_sshd(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    from pytest_mkosi.runners import qemu as runner_module
    from pytest_mkosi.runners import qemu_snapshots

    runner = object.__new__(runner_module.QemuRunner)
    runner.name, runner._qmp, runner._ready = "m", object(), None  # type: ignore[assignment]
    monkeypatch.setattr(runner, "is_running", lambda: True)
    runner._saved_sessions = {"fresh": SessionRecord(((0, b"SSH-2.0-OpenSSH\r\n"),), b"SSH-2.0-x\r\n", 9, b"", b"")}
    runner._keys = make_keys(tmp_path)
    runner.restore_fallbacks = 0
    pair = socket.socketpair()
    calls: list[str] = []
    monkeypatch.setattr(runner, "_ssh_port", lambda: object())
    monkeypatch.setattr(qemu_snapshots, "load_with_session", lambda *a, **k: pair[0])

    def garbled(*_: object, **__: object) -> None:
        raise RunError("the SSH handshake with the sshd of the snapshot failed")

    monkeypatch.setattr(qemu_snapshots, "replay_session", garbled)
    monkeypatch.setattr(runner, "reconnect", lambda **_: calls.append("reconnect"))
    monkeypatch.setattr(runner, "connection", lambda: None)
    monkeypatch.setattr(qemu_snapshots, "set_guest_clock", lambda _: calls.append("clock"))
    runner.restore("fresh", timeout=5)
    assert calls == ["reconnect", "clock"] and runner.restore_fallbacks == 1
    assert pair[0].fileno() == -1  # the garbled stream is hung up: its sshd exits and the next one starts
    pair[1].close()
