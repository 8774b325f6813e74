"""SSH into nspawn containers without a network (imagebuild.launch.nspawn_ssh), as `imagebuild boot` and the
nspawn runner set it up, and the runtime record through which `imagebuild ssh` reaches a booted container."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from imagebuild.config import load
from imagebuild.launch import nspawn_ssh as ns
from imagebuild.launch import runtime_state as rs
from imagebuild.launch.nspawn import NspawnOptions, nspawn_command
from imagebuild.launch.ssh_keys import HOST_KEY_ALIAS
from imagebuild.verbs.nspawn_exec import runtime_state
from imagebuild.verbs.ssh import command_line


def test_access_binds_units_and_keys_but_not_the_client_key(tmp_path: Path) -> None:
    access = ns.prepare_unix_ssh(tmp_path)
    assert access.socket == tmp_path / "share" / "ssh.sock"
    assert sorted(p.name for p in access.share.iterdir()) == ["authorized_keys", "ssh_host_ed25519_key"]
    assert (access.share / "authorized_keys").read_text() == access.keys.client_public
    host_key = access.share / "ssh_host_ed25519_key"
    assert host_key.read_bytes() == access.keys.host_key.read_bytes() and host_key.stat().st_mode & 0o777 == 0o600
    assert access.keys.client_key.parent == tmp_path and access.keys.client_key.stat().st_mode & 0o777 == 0o600
    assert access.keys.known_hosts.read_text() == f"{HOST_KEY_ALIAS} {access.keys.host_public}\n"
    service = (access.units / ns.SERVICE_UNIT).read_text()
    assert f"-o HostKey={ns.GUEST_DIR}/ssh_host_ed25519_key" in service
    assert f"-o AuthorizedKeysFile={ns.GUEST_DIR}/authorized_keys" in service
    assert f"ListenStream={ns.GUEST_DIR}/ssh.sock" in (access.units / ns.SOCKET_UNIT).read_text()
    assert access.binds == [(access.units, "/run/systemd/system"), (access.share, ns.GUEST_DIR)]
    assert access.init_args == [f"systemd.wants={ns.SOCKET_UNIT}"]


def test_boot_verb_binds_the_access_and_records_where_ssh_goes(tmp_path: Path) -> None:
    directory = tmp_path / "conf"
    directory.mkdir()
    _, images = load(["-C", str(directory), "--distribution=debian", "--release=trixie",
                      f"--output-dir={tmp_path / 'out'}", "summary"])
    config = images[-1]
    access = ns.prepare_unix_ssh(tmp_path / "scratch")
    argv = nspawn_command(config, tmp_path / "tree", NspawnOptions(boot=True, binds=access.binds), access.init_args)
    assert f"--bind={access.share}:{ns.GUEST_DIR}" in argv and argv[-1] == f"systemd.wants={ns.SOCKET_UNIT}"
    record = runtime_state(access)
    assert record.pid == os.getpid() and record.transport == "unix" and record.ssh_socket == str(access.socket)
    rs.write_state(config, record)
    try:
        read = rs.read_state(config)
    finally:
        rs.remove_state(config)
    ssh = command_line(read, ["true"])
    assert f"ProxyCommand={sys.executable} -m imagebuild.launch.relay unix {access.socket}" in ssh
    assert f"UserKnownHostsFile={access.keys.known_hosts}" in ssh and ssh[-2:] == [f"root@{HOST_KEY_ALIAS}", "true"]


def test_a_recorded_machine_process_runs_after_its_enter_function_and_the_record_goes_with_it(
        tmp_path: Path) -> None:
    # `imagebuild boot` moves systemd-nspawn into the machine's own cgroup this way (an enter function run in
    # the child before the exec); here it leaves a mark the child's command sees.
    directory = tmp_path / "conf"
    directory.mkdir()
    _, images = load(["-C", str(directory), "--distribution=debian", "--release=trixie",
                      f"--output-dir={tmp_path / 'out'}", "summary"])
    config = images[-1]
    mark = tmp_path / "entered"
    seen = tmp_path / "seen"
    record = rs.RuntimeState(pid=os.getpid(), transport="unix", key="k", known_hosts="h", host_key_alias="a")
    script = f'cat "{mark}" > "{seen}"; test -e "{rs.state_path(config)}"'
    status = rs.run_recorded(config, record, ["sh", "-c", script], enter=lambda: mark.write_text(str(os.getpid())))
    assert status == 0
    child = seen.read_text()
    assert child.isdigit() and child != str(os.getpid())  # written in the child, before its exec
    assert not rs.state_path(config).exists()
