"""Fresh machines without a machine: the evidence Watch across a restore, and the saved sshd's banner
replayed to paramiko (runners/snapshot.py) over a socket pair."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from imagebuild.errors import RunError
from imagebuild.launch.serial_sshd import open_fresh_sshd
from pytest_mkosi.evidence.collect import Watch
from pytest_mkosi.runners.snapshot import (
    SavedHandshake,
    SnapshotError,
    SshPort,
    client_banner,
    one_connection,
    read_available,
    read_kexinit,
    save_with_sshd_waiting,
)


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


def kexinit_packet(payload: bytes = b"\x14" + b"c" * 16 + b"curve25519-sha256") -> bytes:
    padding = 8 - (len(payload) + 5) % 8 + 8
    return (1 + len(payload) + padding).to_bytes(4, "big") + bytes([padding]) + payload + b"\0" * padding


def test_the_saved_handshake_is_replayed_and_the_client_banner_said_once() -> None:
    server, client = socket.socketpair()
    with server:
        kexinit = kexinit_packet()
        server.sendall(b"SSH-2.0-OpenSSH_10.0\r\n")
        _, banner = open_fresh_sshd(lambda: client, deadline=time.monotonic() + 5)
        assert banner == b"SSH-2.0-OpenSSH_10.0\r\n"
        server.sendall(kexinit + b"later")  # the sshd's KEXINIT follows the client's banner
        assert read_kexinit(client, time.monotonic() + 5) == kexinit  # not a byte more
        said = client_banner()
        assert said.startswith(b"SSH-2.0-paramiko_") and said.endswith(b"\r\n")
        connect = one_connection(client, SavedHandshake(banner + kexinit, said))
        replayed = connect()
        assert replayed.recv(8) == b"SSH-2.0-"
        assert replayed.recv(100) == b"OpenSSH_10.0\r\n" + kexinit
        assert replayed.recv(100) == b"later"
        # The saved sshd has had the banner: swallowed, whether it comes in pieces or with what follows.
        assert replayed.send(said[:5]) == 5
        replayed.sendall(said[5:] + b"KEXINIT")
        assert server.recv(100) == b"KEXINIT"
        # The saved sshd cannot take a second handshake: no retry on the same socket.
        with pytest.raises(RunError, match="handshake with the sshd saved"):
            connect()
        replayed.close()


def test_a_client_that_says_another_banner_does_not_reach_the_saved_sshd() -> None:
    server, client = socket.socketpair()
    with server:
        replayed = one_connection(client, SavedHandshake(b"SSH-2.0-OpenSSH\r\n", b"SSH-2.0-paramiko_1.0\r\n"))()
        with pytest.raises(ConnectionError, match="not the"):
            replayed.sendall(b"SSH-2.0-paramiko_2.0\r\n")
        replayed.close()
        assert server.recv(100) == b""  # nothing went through


def test_a_saved_sshd_must_send_its_kexinit() -> None:
    for sent, error in ((b"", "sent no KEXINIT"), (b"\xff\xff\xff\xff", "no packet"),
                        (kexinit_packet(b"\x15"), "message 21")):
        server, client = socket.socketpair()
        with server, client:
            server.sendall(sent)
            with pytest.raises(SnapshotError, match=error):
                read_kexinit(client, time.monotonic() + 0.2)


def test_no_banner_is_a_clear_error_and_leftovers_are_drained() -> None:
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
            save_with_sshd_waiting(port, "fresh", deadline=time.monotonic() + 0.5)


def test_a_saved_sshd_that_fails_its_handshake_gives_way_to_a_fresh_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_mkosi.runners import qemu as runner_module
    from pytest_mkosi.runners import qemu_snapshots

    runner = object.__new__(runner_module.QemuRunner)
    runner.name, runner._qmp, runner._ready = "m", object(), None  # type: ignore[assignment]
    monkeypatch.setattr(runner, "is_running", lambda: True)
    runner._saved_handshakes = {"fresh": SavedHandshake(b"SSH-2.0-OpenSSH\r\n", client_banner())}
    runner.restore_fallbacks = 0
    pair = socket.socketpair()
    calls: list[str] = []
    monkeypatch.setattr(runner, "_ssh_port", lambda: object())
    monkeypatch.setattr(qemu_snapshots, "load_with_sshd_waiting", lambda *a, **k: pair[0])

    def garbled(*_: object) -> None:
        raise RunError("the SSH handshake with the sshd saved in the snapshot failed")

    monkeypatch.setattr(runner, "_connect_over", garbled)
    monkeypatch.setattr(runner, "reconnect", lambda **_: calls.append("reconnect"))
    monkeypatch.setattr(runner, "connection", lambda: None)
    monkeypatch.setattr(qemu_snapshots, "set_guest_clock", lambda _: calls.append("clock"))
    runner.restore("fresh", timeout=5)
    assert calls == ["reconnect", "clock"] and runner.restore_fallbacks == 1
    assert pair[0].fileno() == -1  # the garbled stream is hung up: its sshd exits and the next one starts
    pair[1].close()
