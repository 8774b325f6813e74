"""The guest side of the SSH transport: systemd units that serve `sshd -i` on a socket the host can reach.

They are written into a host directory that the runner binds over the guest's /run/systemd/system, so the
image itself is never changed. The host key is made at boot when the image has none (it then lives only in
that boot's overlay).
"""

from __future__ import annotations

from pathlib import Path

# Where the runner binds the directory with the socket and the session's authorized key.
GUEST_DIR = "/run/pytest-mkosi"
SOCKET_UNIT = "pytest-mkosi-ssh.socket"

SOCKET_UNIT_TEXT = f"""\
[Unit]
Description=pytest-mkosi SSH access on an AF_UNIX socket
DefaultDependencies=no
Before=sockets.target

[Socket]
ListenStream={GUEST_DIR}/ssh.sock
Accept=yes
SocketMode=0600
"""

SERVICE_UNIT_TEXT = f"""\
[Unit]
Description=pytest-mkosi SSH session
DefaultDependencies=no

[Service]
ExecStartPre=-/usr/bin/ssh-keygen -A
ExecStart=-/usr/sbin/sshd -i -e -o AuthorizedKeysFile={GUEST_DIR}/authorized_keys \\
    -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no -o UseDNS=no
StandardInput=socket
StandardError=journal
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
"""


def write_unix_socket_units(units: Path) -> str:
    """Write the socket-activated sshd units into `units`; return the unit the guest must start."""
    units.mkdir(parents=True, exist_ok=True)
    (units / SOCKET_UNIT).write_text(SOCKET_UNIT_TEXT)
    (units / "pytest-mkosi-ssh@.service").write_text(SERVICE_UNIT_TEXT)
    return SOCKET_UNIT
