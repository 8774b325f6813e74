"""The qemu runner's pieces that need no VM: guest units and credentials, the vsock and virtio-serial
argv, the runner's qemu options, the runtime record and the ssh verb (state directories: test_state_dirs.py)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.errors import RunError
from imagebuild.launch import guest_ssh as g
from imagebuild.launch import runtime_state as rs
from imagebuild.launch import vsock as vsock_module
from imagebuild.launch.vsock import ssh_transport as choose_transport
from imagebuild.verbs.ssh import command_line
from pytest_mkosi.runners.qemu import QemuRunner
from pytest_mkosi.runners.readiness import ReadyPort


def credentials(argv: list[str]) -> dict[str, bytes]:
    found = {}
    for i, word in enumerate(argv[:-1]):
        if word == "-smbios":
            value = argv[i + 1]
            if value.startswith("type=11,path="):  # a secret: qemu reads it from a private file
                path = Path(value.removeprefix("type=11,path="))
                assert path.stat().st_mode & 0o777 == 0o600, path
                value = "type=11,value=" + path.read_text()
            match = re.fullmatch(r"type=11,value=io\.systemd\.credential\.binary:([^=]+)=(.*)", value)
            assert match, value
            found[match.group(1)] = base64.b64decode(match.group(2))
    return found


def values_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


@pytest.fixture
def keys(tmp_path: Path) -> g.SshKeys:
    return g.make_keys(tmp_path / "ssh")


def test_keys_are_private_and_the_host_key_is_pinned(keys: g.SshKeys) -> None:
    for path in (keys.client_key, keys.host_key):
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert keys.client_public.startswith("ssh-ed25519 ")
    known = (keys.client_key.parent / "known_hosts").read_text()
    assert known == f"{g.HOST_KEY_ALIAS} {keys.host_public}\n"


def test_virtio_serial_channel_argv_and_guest_units(tmp_path: Path, keys: g.SshKeys) -> None:
    channel = g.virtio_serial_channel(tmp_path, keys)
    argv = channel.qemu_args
    assert channel.kind == "virtio-serial" and channel.ssh_socket == tmp_path / "ssh.sock"
    assert "virtio-serial-pci,id=imagebuild-serial" in values_after(argv, "-device")
    chardevs = values_after(argv, "-chardev")
    assert f"socket,id=ibssh,path={tmp_path}/ssh.sock,server=on,wait=off" in chardevs
    assert f"socket,id=ibready,path={tmp_path}/ready.sock,server=on,wait=off" in chardevs
    ports = [d for d in values_after(argv, "-device") if d.startswith("virtserialport")]
    assert ports == ["virtserialport,bus=imagebuild-serial.0,chardev=ibssh,name=io.imagebuild.ssh",
                     "virtserialport,bus=imagebuild-serial.0,chardev=ibready,name=io.imagebuild.ready"]
    assert "-nic" not in argv and "vhost-vsock-pci" not in " ".join(argv)
    creds = credentials(argv)
    assert set(creds) == {"systemd.extra-unit.imagebuild-ssh-serial.service",
                          "systemd.unit-dropin.sysinit.target~imagebuild-ssh", "imagebuild.ssh.serve-port",
                          "imagebuild.ssh.host_key", "ssh.authorized_keys.root"}
    assert creds["ssh.authorized_keys.root"].decode() == keys.client_public
    assert creds["imagebuild.ssh.host_key"] == keys.host_key.read_bytes()
    assert "PRIVATE KEY" not in " ".join(argv) and base64.b64encode(keys.host_key.read_bytes()).decode() not in \
        " ".join(argv)  # every user of the host can read qemu's command line
    assert creds["imagebuild.ssh.serve-port"] == g.SERVE_PORT_SCRIPT.encode()
    assert creds["systemd.unit-dropin.sysinit.target~imagebuild-ssh"] == \
        b"[Unit]\nWants=imagebuild-ssh-serial.service\n"
    ssh_unit = creds["systemd.extra-unit.imagebuild-ssh-serial.service"].decode()
    assert "ExecStart=-/bin/sh %d/imagebuild.ssh.serve-port io.imagebuild.ssh /usr/sbin/sshd -i " in ssh_unit
    # Every sshd announces itself before it serves: the readiness event, also after a reconnect.
    assert ("ExecStartPre=-/bin/sh %d/imagebuild.ssh.serve-port io.imagebuild.ready /bin/cat "
            "/proc/sys/kernel/random/boot_id") in ssh_unit
    assert "HostKey=%d/imagebuild.ssh.host_key" in ssh_unit
    assert "AuthorizedKeysFile=%d/ssh.authorized_keys.root" in ssh_unit
    assert "ImportCredential=imagebuild.ssh.*" in ssh_unit and "ImportCredential=ssh.authorized_keys.root" in ssh_unit
    assert "Restart=always" in ssh_unit and "RestartSec=300ms" in ssh_unit
    assert "StartLimitIntervalSec=0" in ssh_unit and "DefaultDependencies=no" in ssh_unit
    assert "After=local-fs.target systemd-tmpfiles-setup.service\n" in ssh_unit
    assert "ConditionPathExists=/usr/sbin/sshd" in ssh_unit


def test_serve_port_script_finds_the_port_by_name_and_opens_it_once(tmp_path: Path) -> None:
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    for port, name in (("vport1p1", "org.qemu.guest_agent.0"), ("vport1p2", "io.imagebuild.ssh")):
        (sysfs / port).mkdir(parents=True)
        (sysfs / port / "name").write_text(name + "\n")
    dev.mkdir()
    (dev / "vport1p1").write_text("wrong port")
    (dev / "vport1p2").write_text("hello")
    script = g.SERVE_PORT_SCRIPT.replace("/sys/class/virtio-ports", str(sysfs)).replace('"/dev/', f'"{dev}/')
    assert script != g.SERVE_PORT_SCRIPT
    # The command reads the port and writes to it through the same open file (its offset is shared).
    command = ["sh", "-c", 'read -r line; printf "[%s]" "$line"']
    subprocess.run(["/bin/sh", "-c", script, "sh", "io.imagebuild.ssh", *command], check=True, timeout=10)
    assert (dev / "vport1p2").read_text() == "hello[hello]"
    assert (dev / "vport1p1").read_text() == "wrong port"


def test_virtio_serial_without_readiness_for_the_verb(tmp_path: Path, keys: g.SshKeys) -> None:
    channel = g.virtio_serial_channel(tmp_path, keys, readiness=False, restart_seconds=2.0)
    assert channel.ready_socket is None
    assert "io.imagebuild.ready" not in " ".join(channel.qemu_args)
    creds = credentials(channel.qemu_args)
    unit = creds["systemd.extra-unit.imagebuild-ssh-serial.service"].decode()
    assert "RestartSec=2000ms" in unit and "ExecStartPre" not in unit
    wants = creds["systemd.unit-dropin.sysinit.target~imagebuild-ssh"]
    assert wants == b"[Unit]\nWants=imagebuild-ssh-serial.service\n"


def test_vsock_channel_argv_and_guest_units(keys: g.SshKeys) -> None:
    channel = g.vsock_channel(1234, keys, notify_port=5555)
    assert channel.kind == "vsock" and channel.cid == 1234 and channel.ssh_port == g.SSH_VSOCK_PORT
    assert values_after(channel.qemu_args, "-device") == ["vhost-vsock-pci,guest-cid=1234"]
    creds = credentials(channel.qemu_args)
    assert creds["vmm.notify_socket"] == b"vsock-stream:2:5555"
    socket_unit = creds["systemd.extra-unit.imagebuild-ssh-vsock.socket"].decode()
    assert f"ListenStream=vsock::{g.SSH_VSOCK_PORT}" in socket_unit and "Accept=yes" in socket_unit
    service = creds["systemd.extra-unit.imagebuild-ssh-vsock@.service"].decode()
    assert "StandardInput=socket" in service and "ExecStart=-/usr/sbin/sshd -i" in service
    assert creds["systemd.unit-dropin.sockets.target~imagebuild-ssh"] == b"[Unit]\nWants=imagebuild-ssh-vsock.socket\n"
    assert creds["ssh.authorized_keys.root"].decode() == keys.client_public
    assert "virtserialport" not in " ".join(channel.qemu_args)
    assert "vmm.notify_socket" not in credentials(g.vsock_channel(3, keys, notify_port=None).qemu_args)


# ---- the runner ---------------------------------------------------------------------------------------


def disk_config(tmp_path: Path, *args: str) -> tuple[Config, Path]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    image = out / "image.raw"
    image.write_bytes(b"disk")
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    _, images = load(["-C", str(conf), "--distribution=debian", "--release=trixie", "--format=disk",
                      f"--output-dir={out}", *args, "summary"])
    return images[-1], image


def test_transport_follows_qemuvsock_and_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vsock_module, "vhost_vsock_available", lambda: False)
    assert choose_transport(disk_config(tmp_path)[0]) == "virtio-serial"
    with pytest.raises(RunError, match="no /dev/vhost-vsock"):
        choose_transport(disk_config(tmp_path, "--qemu-vsock=yes")[0])
    monkeypatch.setattr(vsock_module, "vhost_vsock_available", lambda: True)
    assert choose_transport(disk_config(tmp_path)[0]) == "vsock"
    assert choose_transport(disk_config(tmp_path, "--qemu-vsock=no")[0]) == "virtio-serial"


def test_runner_options_console_qmp_overlay(tmp_path: Path, keys: g.SshKeys,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vsock_module, "vhost_vsock_available", lambda: False)
    config, image = disk_config(tmp_path)
    runner = QemuRunner(config, image, name="m1", state_parent=tmp_path / "machines")
    assert runner.image_path == image and runner.transport == "virtio-serial"
    state = tmp_path / "state"
    channel = g.virtio_serial_channel(state, keys)
    options = runner.qemu_options(state, channel)
    assert options.overlay and options.ephemeral and options.scratch == state and options.network is False
    assert options.console_args == [
        "-chardev", f"socket,id=console,path={state}/console.sock,server=on,wait=off,"
        f"logfile={state}/console.log,logappend=on", "-serial", "chardev:console"]
    extra = list(options.extra_args)
    assert extra[:len(channel.qemu_args)] == channel.qemu_args
    assert extra[-2:] == ["-qmp", f"unix:{state}/qmp.sock,server=on,wait=off"]


def test_runner_gives_a_nic_only_when_asked(tmp_path: Path, keys: g.SshKeys,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vsock_module, "vhost_vsock_available", lambda: False)
    channel = g.virtio_serial_channel(tmp_path, keys)
    config, image = disk_config(tmp_path)
    assert QemuRunner(config, image, name="m").qemu_options(tmp_path, channel).network is False
    assert QemuRunner(config, image, name="m", network=True).qemu_options(tmp_path, channel).network is True


def test_runner_refuses_what_it_cannot_boot(tmp_path: Path) -> None:
    config, image = disk_config(tmp_path)
    with pytest.raises(RunError, match="not the artifact"):
        QemuRunner(config, image.with_name("other.raw"), name="m")
    tar, _ = disk_config(tmp_path, "--format=tar")
    with pytest.raises(RunError, match="cannot boot Format=tar"):
        QemuRunner(tar, tmp_path / "out" / "image.tar", name="m")


def test_ready_port_returns_the_next_new_boot_id(tmp_path: Path) -> None:
    import socket
    import threading

    path = tmp_path / "ready.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    first, second = "6308b208-1ff6-4347-93f2-5b6d6635b11f", "9affc43e-2f1a-4d45-af24-906dc71fc0c1"

    def guest() -> None:
        conn, _ = server.accept()
        conn.sendall(f"noise\n{first}\n".encode())
        time.sleep(0.2)
        conn.sendall(f"{first}\n{second}\n".encode())
        time.sleep(0.5)
        conn.close()

    thread = threading.Thread(target=guest)
    thread.start()
    port = ReadyPort(path)
    port.connect(deadline=time.monotonic() + 5, alive=lambda: True)
    assert port.wait_boot(other_than=None, deadline=time.monotonic() + 5, alive=lambda: True) == first
    assert port.wait_boot(other_than=first, deadline=time.monotonic() + 5, alive=lambda: True) == second
    with pytest.raises(ConnectionError):
        port.wait_boot(other_than=second, deadline=time.monotonic() + 5, alive=lambda: True)
    port.close()
    thread.join()
    server.close()


# ---- imagebuild ssh ----------------------------------------------------------------------------------


def test_runtime_record_is_private_and_read_back(tmp_path: Path) -> None:
    config, _ = disk_config(tmp_path)
    state = rs.RuntimeState(pid=os.getpid(), transport="virtio-serial", key="/k", known_hosts="/kh",
                            host_key_alias=g.HOST_KEY_ALIAS, ssh_socket="/s/ssh.sock")
    path = rs.write_state(config, state)
    assert path == tmp_path / "out" / ".image.runtime.json" and path.stat().st_mode & 0o777 == 0o600
    assert rs.read_state(config) == state
    argv = command_line(state, ["uname", "-a"])
    assert argv[0] == "ssh" and argv[-3:] == [f"root@{g.HOST_KEY_ALIAS}", "uname", "-a"]
    # A virtio-serial port: the relay passes it on only once a fresh sshd answers (serial_sshd).
    assert f"ProxyCommand={sys.executable} -m imagebuild.launch.relay serial /s/ssh.sock" in argv
    assert "UserKnownHostsFile=/kh" in argv and "StrictHostKeyChecking=yes" in argv
    vsock = command_line(rs.RuntimeState(pid=1, transport="vsock", key="/k", known_hosts="/kh",
                                         host_key_alias=g.HOST_KEY_ALIAS, cid=77, port=2222), [])
    assert f"ProxyCommand={sys.executable} -m imagebuild.launch.relay vsock 77 2222" in vsock
    rs.remove_state(config)
    with pytest.raises(RunError, match="start one with 'imagebuild qemu'"):
        rs.read_state(config)


def test_runtime_record_of_a_dead_machine_is_refused(tmp_path: Path) -> None:
    config, _ = disk_config(tmp_path)
    rs.write_state(config, rs.RuntimeState(pid=999_999_999, transport="vsock", key="/k", known_hosts="/kh",
                                           host_key_alias=g.HOST_KEY_ALIAS, cid=3, port=2222))
    with pytest.raises(RunError, match="no longer running"):
        rs.read_state(config)
    assert not rs.state_path(config).exists()


def test_relay_carries_bytes_both_ways(tmp_path: Path) -> None:
    import socket
    import threading

    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def echo() -> None:
        conn, _ = server.accept()
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        conn.sendall(data.upper())
        conn.close()

    thread = threading.Thread(target=echo)
    thread.start()
    result = subprocess.run([sys.executable, "-m", "imagebuild.launch.relay", "unix", str(path)], input=b"hello",
                            capture_output=True, timeout=10, check=False)
    thread.join()
    server.close()
    assert result.stdout == b"HELLO", result.stderr


def test_ready_port_drain_forgets_earlier_announcements(tmp_path: Path) -> None:
    import socket
    import threading

    path = tmp_path / "ready.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    old, fresh = "6308b208-1ff6-4347-93f2-5b6d6635b11f", "9affc43e-2f1a-4d45-af24-906dc71fc0c1"
    sent_old = threading.Event()
    go = threading.Event()

    def guest() -> None:
        conn, _ = server.accept()
        conn.sendall(f"{old}\n{old}\n".encode())
        sent_old.set()
        go.wait(5)
        conn.sendall(f"{fresh}\n".encode())
        time.sleep(0.3)
        conn.close()

    thread = threading.Thread(target=guest)
    thread.start()
    port = ReadyPort(path)
    port.connect(deadline=time.monotonic() + 5, alive=lambda: True)
    sent_old.wait(5)
    time.sleep(0.2)
    port.drain()
    go.set()
    assert port.wait_boot(other_than=None, deadline=time.monotonic() + 5, alive=lambda: True) == fresh
    port.close()
    thread.join()
    server.close()
