"""SSH into a qemu guest without a network: the devices, the guest's units and the keys, passed as
SMBIOS credentials so that the image itself is never changed.

systemd 256+ in the guest turns `systemd.extra-unit.*` credentials into units and
`systemd.unit-dropin.*` credentials into drop-ins (systemd-debug-generator); a drop-in on sysinit.target
pulls our units into every boot (also rescue.target's). sshd reads its host key and the authorized key
straight from the unit's credentials directory (%d), so no file of the image is touched.

Two byte streams carry SSH:
- AF_VSOCK where /dev/vhost-vsock exists: a socket unit on vsock port SSH_VSOCK_PORT starts `sshd -i`
  per connection; systemd's `vmm.notify_socket` tells the host READY=1 when the boot is done.
- virtio-serial everywhere else: a port (PORT_SSH) backed by a unix socket of qemu's on the host, with
  `sshd -i` reading and writing it. The port carries one stream at a time (paramiko multiplexes channels
  over it). A guest's write to a port blocks while no host program is connected, so a fresh sshd waits
  in its first write (its banner) for the host; when the host hangs up, sshd reads EOF and exits, and
  systemd starts the next one after a pause. Before each sshd starts, the boot's ID is written to a
  second port (PORT_READY): the host waits for that event instead of scraping the console, then does the
  SSH handshake; after a disconnect it waits for the next one, so it never meets the end of an old
  session. That needs the host to hang up only on an sshd with nothing left to send: one caught in a
  write never sees the EOF and would speak into the next connection (the runner settles first:
  pytest_mkosi.transport.ssh.SshConnection.settle). A client that was killed cannot settle, and the guest
  may notice a hang-up late: so every host client uses a connection only once a fresh sshd's banner comes
  first (serial_sshd: the runner and `relay serial`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from imagebuild.launch.relay import relay_command
from imagebuild.launch.smbios import smbios_credential, smbios_credential_file

# Re-exported: the keys belong to the channel's users as much as to this module.
from imagebuild.launch.ssh_keys import HOST_KEY_ALIAS as HOST_KEY_ALIAS
from imagebuild.launch.ssh_keys import SshKeys as SshKeys
from imagebuild.launch.ssh_keys import make_keys as make_keys
from imagebuild.launch.ssh_keys import ssh_argv as ssh_argv
from imagebuild.launch.ssh_keys import sshd_command

PORT_SSH = "io.imagebuild.ssh"
PORT_READY = "io.imagebuild.ready"
# qemu's id of the chardev behind the SSH port (QMP query-chardev tells whether the host side is connected).
SSH_CHARDEV = "ibssh"
SSH_SERIAL_UNIT = "imagebuild-ssh-serial.service"
SSH_VSOCK_SOCKET = "imagebuild-ssh-vsock.socket"
SSH_VSOCK_SERVICE = "imagebuild-ssh-vsock@.service"
# Not 22: systemd-ssh-generator (256+) may listen there with the image's own sshd settings and keys.
SSH_VSOCK_PORT = 2222
VMADDR_CID_HOST = 2

HOST_KEY_CREDENTIAL = "imagebuild.ssh.host_key"
# The name systemd's tmpfiles provisioning knows too (/root/.ssh/authorized_keys for other sshds).
AUTHORIZED_KEYS_CREDENTIAL = "ssh.authorized_keys.root"


# sshd reads its keys straight from the unit's credentials directory.
SSHD = sshd_command(host_key=f"%d/{HOST_KEY_CREDENTIAL}", authorized_keys=f"%d/{AUTHORIZED_KEYS_CREDENTIAL}")
# On the virtio-serial port sshd also polls by itself every 3 quiet seconds: under TCG the guest can lose
# the wake-up of a read, leaving sshd asleep on a request that has arrived (seen as SFTP and commands that
# never got an answer); any later byte wakes it. CountMax=0: it never hangs up for want of an answer.
SSHD_SERIAL = f"{SSHD} -o ClientAliveInterval=3 -o ClientAliveCountMax=0"


# Runs a command with a virtio-serial port (found by its name in sysfs) as its stdin and stdout. Not
# /dev/virtio-ports/NAME: udev makes that link, and under TCG udev's coldplug ends late in the boot (90 s
# after the kernel started on a loaded host, where the port's /dev/vportNpM was there from the initrd on).
# One open file for both directions: a port can be opened only once.
SERVE_PORT_SCRIPT = """\
name=$1
shift
while :; do
    for port in /sys/class/virtio-ports/*; do
        if [ "$(cat "$port/name" 2>/dev/null)" = "$name" ]; then
            exec 3<>"/dev/${port##*/}"
            exec "$@" <&3 >&3 3<&-
        fi
    done
    sleep 0.1
done
"""
SERVE_PORT_CREDENTIAL = "imagebuild.ssh.serve-port"


def ssh_serial_unit(restart_seconds: float, *, announce: bool) -> str:
    # Each sshd announces itself (the boot ID on PORT_READY) before it opens PORT_SSH, i.e. only after the
    # previous one has exited: a host that connects after a fresh announcement cannot meet the rest of an
    # old session on the port (the guest notices a host disconnect late under TCG).
    announce_line = (f"ExecStartPre=-/bin/sh %d/{SERVE_PORT_CREDENTIAL} {PORT_READY} "
                     "/bin/cat /proc/sys/kernel/random/boot_id\n") if announce else ""
    return f"""\
[Unit]
Description=SSH for the host on the virtio-serial port {PORT_SSH}
DefaultDependencies=no
After=local-fs.target systemd-tmpfiles-setup.service
Before=shutdown.target
Conflicts=shutdown.target
ConditionPathExists=/usr/sbin/sshd
# sshd exits at every hang-up of the host; it must be started again and again.
StartLimitIntervalSec=0

[Service]
ImportCredential=imagebuild.ssh.*
ImportCredential={AUTHORIZED_KEYS_CREDENTIAL}
{announce_line}# "-": an ended session is not a failure.
ExecStart=-/bin/sh %d/{SERVE_PORT_CREDENTIAL} {PORT_SSH} {SSHD_SERIAL}
StandardError=journal
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
Restart=always
RestartSec={int(restart_seconds * 1000)}ms
"""


def ssh_vsock_socket_unit() -> str:
    return f"""\
[Unit]
Description=SSH for the host on AF_VSOCK port {SSH_VSOCK_PORT}
DefaultDependencies=no
Before=sockets.target shutdown.target
Conflicts=shutdown.target
ConditionPathExists=/dev/vsock
ConditionPathExists=/usr/sbin/sshd

[Socket]
ListenStream=vsock::{SSH_VSOCK_PORT}
Accept=yes
"""


def ssh_vsock_service_unit() -> str:
    return f"""\
[Unit]
Description=SSH session for the host over AF_VSOCK
DefaultDependencies=no
After=local-fs.target systemd-tmpfiles-setup.service

[Service]
ImportCredential={HOST_KEY_CREDENTIAL}
ImportCredential={AUTHORIZED_KEYS_CREDENTIAL}
ExecStart=-{SSHD}
StandardInput=socket
StandardError=journal
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
"""


def dropin(units: list[str]) -> bytes:
    return f"[Unit]\nWants={' '.join(units)}\n".encode()


# ---- keys ---------------------------------------------------------------------------------------


def key_credentials(keys: SshKeys) -> list[str]:
    # The host's private key goes through a file beside it; the authorized (public) key may be seen.
    host_key = smbios_credential_file(HOST_KEY_CREDENTIAL, keys.host_key.read_bytes(),
                                      keys.host_key.with_name(keys.host_key.name + ".smbios"))
    return [*host_key, *smbios_credential(AUTHORIZED_KEYS_CREDENTIAL, keys.client_public.encode())]


# ---- channels ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestChannel:
    """How the host reaches the guest's sshd, and the qemu arguments that set it up."""

    kind: Literal["virtio-serial", "vsock"]
    qemu_args: list[str] = field(default_factory=list)
    # virtio-serial: qemu's sockets for the SSH port and the readiness port (None: no readiness port).
    ssh_socket: Path | None = None
    ready_socket: Path | None = None
    # vsock: the guest's CID and sshd's port; the host port systemd sends READY=1 to (None: none).
    cid: int | None = None
    ssh_port: int | None = None
    notify_port: int | None = None


def virtio_serial_channel(directory: Path, keys: SshKeys, *, readiness: bool = True,
                          restart_seconds: float = 0.3) -> GuestChannel:
    """A virtio-serial port for SSH (and one for readiness), backed by qemu's unix sockets in `directory`."""
    ssh_socket, ready_socket = directory / "ssh.sock", directory / "ready.sock"
    args = ["-device", "virtio-serial-pci,id=imagebuild-serial"]
    ports = [(SSH_CHARDEV, ssh_socket, PORT_SSH)] + ([("ibready", ready_socket, PORT_READY)] if readiness else [])
    for chardev, path, name in ports:
        args += ["-chardev", f"socket,id={chardev},path={path},server=on,wait=off",
                 "-device", f"virtserialport,bus=imagebuild-serial.0,chardev={chardev},name={name}"]
    units = [SSH_SERIAL_UNIT]
    unit = ssh_serial_unit(restart_seconds, announce=readiness)
    args += smbios_credential(f"systemd.extra-unit.{SSH_SERIAL_UNIT}", unit.encode())
    args += smbios_credential("systemd.unit-dropin.sysinit.target~imagebuild-ssh", dropin(units))
    args += smbios_credential(SERVE_PORT_CREDENTIAL, SERVE_PORT_SCRIPT.encode())
    args += key_credentials(keys)
    return GuestChannel("virtio-serial", args, ssh_socket=ssh_socket, ready_socket=ready_socket if readiness else None)


def vsock_channel(cid: int, keys: SshKeys, *, notify_port: int | None) -> GuestChannel:
    """A vhost-vsock device with guest CID `cid`, sshd socket-activated on it, READY=1 to `notify_port`."""
    args = ["-device", f"vhost-vsock-pci,guest-cid={cid}"]
    args += smbios_credential(f"systemd.extra-unit.{SSH_VSOCK_SOCKET}", ssh_vsock_socket_unit().encode())
    args += smbios_credential(f"systemd.extra-unit.{SSH_VSOCK_SERVICE}", ssh_vsock_service_unit().encode())
    args += smbios_credential("systemd.unit-dropin.sockets.target~imagebuild-ssh", dropin([SSH_VSOCK_SOCKET]))
    if notify_port is not None:
        args += smbios_credential("vmm.notify_socket", f"vsock-stream:{VMADDR_CID_HOST}:{notify_port}".encode())
    args += key_credentials(keys)
    return GuestChannel("vsock", args, cid=cid, ssh_port=SSH_VSOCK_PORT, notify_port=notify_port)


def relay_argv(channel: GuestChannel) -> list[str]:
    """The ProxyCommand that reaches the channel's sshd (imagebuild.launch.relay)."""
    if channel.kind == "vsock":
        return relay_command("vsock", str(channel.cid), str(channel.ssh_port))
    return relay_command("serial", str(channel.ssh_socket))
