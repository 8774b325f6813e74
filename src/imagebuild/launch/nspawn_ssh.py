"""SSH into a systemd-nspawn container without a network: `sshd -i` socket-activated on an AF_UNIX socket in
a host directory bound into the container. Used by `imagebuild boot` (then `imagebuild ssh`) and by
pytest_mkosi's nspawn runner.

Two host directories are bound in: one over the guest's /run/systemd/system with the socket unit and its
service (so the image itself is never changed), one at GUEST_DIR with the socket, the authorized key and
the host key made for this machine (ssh_keys.make_keys), to which the host pins the guest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagebuild.launch.ssh_keys import SshKeys, make_keys, sshd_command

GUEST_DIR = "/run/imagebuild-ssh"
SOCKET_UNIT = "imagebuild-ssh-unix.socket"
SERVICE_UNIT = "imagebuild-ssh-unix@.service"
SOCKET_NAME = "ssh.sock"

SOCKET_UNIT_TEXT = f"""\
[Unit]
Description=SSH for the host on an AF_UNIX socket
DefaultDependencies=no
Before=sockets.target

[Socket]
ListenStream={GUEST_DIR}/{SOCKET_NAME}
Accept=yes
SocketMode=0600
"""

SERVICE_UNIT_TEXT = f"""\
[Unit]
Description=SSH session for the host
DefaultDependencies=no

[Service]
ExecStart=-{sshd_command(host_key=f"{GUEST_DIR}/ssh_host_ed25519_key",
                         authorized_keys=f"{GUEST_DIR}/authorized_keys")}
StandardInput=socket
StandardError=journal
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
"""


@dataclass(frozen=True)
class UnixSshAccess:
    """The host side of one container's SSH access."""

    keys: SshKeys
    share: Path  # bound at GUEST_DIR
    units: Path  # bound over /run/systemd/system

    @property
    def socket(self) -> Path:
        """The socket the host connects to (it appears once the guest's systemd listens on it)."""
        return self.share / SOCKET_NAME

    @property
    def binds(self) -> list[tuple[Path, str]]:
        return [(self.units, "/run/systemd/system"), (self.share, GUEST_DIR)]

    @property
    def init_args(self) -> list[str]:
        """For the guest's systemd: start the socket in every boot."""
        return [f"systemd.wants={SOCKET_UNIT}"]


def prepare_unix_ssh(directory: Path) -> UnixSshAccess:
    """Keys in `directory` and the two directories to bind (`directory`/share, `directory`/units)."""
    keys = make_keys(directory)
    share, units = directory / "share", directory / "units"
    share.mkdir(exist_ok=True)
    units.mkdir(exist_ok=True)
    (share / "authorized_keys").write_text(keys.client_public)
    # sshd wants its host key private and root's: a copy with mode 0600 (the client key stays outside).
    host_key = share / "ssh_host_ed25519_key"
    host_key.touch(mode=0o600)
    host_key.write_bytes(keys.host_key.read_bytes())
    (units / SOCKET_UNIT).write_text(SOCKET_UNIT_TEXT)
    (units / SERVICE_UNIT).write_text(SERVICE_UNIT_TEXT)
    return UnixSshAccess(keys, share, units)
