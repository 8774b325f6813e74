"""Files for Ssh=, Autologin= and MakeInitrd= (step 17 of the execution flow).

Units go to /usr/lib so that they work in images that ship only /usr; they are enabled by the preset file
written next to them when systemctl preset-all runs (step 21).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.pipeline.image_sandbox import image_has_program, image_path

if TYPE_CHECKING:
    from imagebuild.context import Context

UNIT_DIRECTORY = "usr/lib/systemd/system"
PRESET_DIRECTORY = "usr/lib/systemd/system-preset"

# Our own names: Debian's openssh-server ships ssh.socket (TCP port 22) and sshd@.service, which must stay.
SSH_SOCKET = "imagebuild-sshd-vsock.socket"
SSH_SERVICE = "imagebuild-sshd-vsock@.service"

SSH_SOCKET_TEXT = """\
[Unit]
Description=SSH over AF_VSOCK for imagebuild ssh (Ssh=yes)
# vsock exists only in virtual machines that have a vsock device (/dev/vsock); without one the listener
# would fail. systemd 256+ sets up the same socket by itself when it finds sshd (systemd-ssh-generator);
# then that one is used and this one stays out of its way.
ConditionVirtualization=vm
ConditionPathExists=/dev/vsock
ConditionPathExists=!/run/systemd/generator/sshd-vsock.socket
Before=sockets.target

[Socket]
ListenStream=vsock::22
Accept=yes

[Install]
WantedBy=sockets.target
"""

SSH_SERVICE_TEXT = """\
[Unit]
Description=SSH session over AF_VSOCK (Ssh=yes)

[Service]
# Host keys are made on first use when the image has none.
ExecStartPre=-ssh-keygen -A
# UsePAM=no: with -i, PAM would do a slow reverse lookup of an unknown remote host.
ExecStart=-sshd -i -e -o UsePAM=no
StandardInput=socket
StandardError=journal
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
"""

SSH_PRESET_TEXT = f"enable {SSH_SOCKET}\n"

ROOT_AUTHORIZED_KEYS = "root/.ssh/authorized_keys"


@dataclass(frozen=True)
class Console:
    """A getty unit and the agetty arguments that follow --autologin root in it."""

    unit: str
    agetty_arguments: str


# Autologin= in the man page: /dev/pts/0 (nspawn: its console, and machinectl login's first pts),
# /dev/tty1 and /dev/ttyS0; plus the serial consoles qemu gives arm64 (ttyAMA0) and virtio (hvc0) guests.
AUTOLOGIN_CONSOLES = (
    Console("console-getty.service", "--noclear --keep-baud console 115200,38400,9600"),
    Console("container-getty@.service", "--noclear -"),
    Console("getty@tty1.service", "--noclear -"),
    Console("serial-getty@ttyS0.service", "--keep-baud 115200,57600,38400,9600 -"),
    Console("serial-getty@ttyAMA0.service", "--keep-baud 115200,57600,38400,9600 -"),
    Console("serial-getty@hvc0.service", "--keep-baud 115200,57600,38400,9600 -"),
)


def autologin_dropin(console: Console) -> str:
    # The empty ExecStart= drops the unit's own before ours; \\u is unescaped by systemd to agetty's \u.
    return (
        "[Service]\n"
        "ExecStart=\n"
        f"ExecStart=-agetty -o '-p -f -- \\\\u' --autologin root {console.agetty_arguments} $TERM\n"
    )


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Replace, never follow, a symlink that the distribution or an extra tree left there.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def ssh_public_key(context: Context) -> str | None:
    """The OpenSSH public key of SshCertificate= (else of SshKey=), None if neither is configured."""
    config = context.config
    if config.ssh_certificate is not None:
        source, setting = config.ssh_certificate, "SshCertificate="
    elif config.ssh_key is not None:
        source, setting = config.ssh_key, "SshKey="
    else:
        return None
    try:
        data = source.read_bytes()
    except OSError as e:
        raise BuildError(f"{setting} cannot read {source}: {e.strerror}") from None
    encoding, public_format = serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    try:
        if setting == "SshCertificate=":
            line = x509.load_pem_x509_certificate(data).public_key().public_bytes(encoding, public_format)
        else:
            private = serialization.load_pem_private_key(data, password=None)
            line = private.public_key().public_bytes(encoding, public_format)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise BuildError(
            f"{setting} {source} is not a PEM X.509 certificate or unencrypted private key that SSH can use "
            f"({e}); `imagebuild genkey` makes a suitable pair"
        ) from None
    return line.decode() + " imagebuild\n"


def add_authorized_key(context: Context, key: str) -> None:
    path = context.root / ROOT_AUTHORIZED_KEYS
    home = path.parent.parent
    if home.is_symlink():
        raise BuildError(f"Ssh=: /{home.relative_to(context.root)} is a symlink in the image; cannot add the key")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = path.read_text() if path.is_file() and not path.is_symlink() else ""
    if key.split()[:2] in (line.split()[:2] for line in existing.splitlines()):
        return
    _write(path, existing + key, mode=0o600)


def configure_ssh(context: Context) -> None:
    if not context.config.ssh:
        return
    if image_path(context.root, "usr/sbin/sshd") is None:
        logger.warning("Ssh=yes but the image has no /usr/sbin/sshd: add openssh-server to Packages=")
    units = context.root / UNIT_DIRECTORY
    _write(units / SSH_SOCKET, SSH_SOCKET_TEXT)
    _write(units / SSH_SERVICE, SSH_SERVICE_TEXT)
    _write(context.root / PRESET_DIRECTORY / "80-imagebuild-ssh.preset", SSH_PRESET_TEXT)
    key = ssh_public_key(context)
    if key is not None:
        add_authorized_key(context, key)


def configure_autologin(context: Context) -> None:
    if not context.config.autologin:
        return
    if not image_has_program(context.root, "login"):
        logger.warning("Autologin=yes but the image has no login program: add login to Packages=")
    if not image_has_program(context.root, "agetty"):
        logger.warning("Autologin=yes but the image has no agetty: add util-linux to Packages=")
    units = context.root / UNIT_DIRECTORY
    for console in AUTOLOGIN_CONSOLES:
        _write(units / f"{console.unit}.d" / "autologin.conf", autologin_dropin(console))


def configure_initrd(context: Context) -> None:
    """MakeInitrd=: /etc/initrd-release tells systemd it runs in an initrd, /init is what the kernel starts."""
    if not context.config.make_initrd:
        return
    root = context.root
    if image_path(root, "usr/lib/systemd/systemd") is None:
        raise BuildError("MakeInitrd=yes needs systemd in the image (for /init): add systemd to Packages=")
    release = root / "etc/initrd-release"
    if not release.exists() and not release.is_symlink():
        release.parent.mkdir(parents=True, exist_ok=True)
        release.symlink_to("os-release")
    init = root / "init"
    if not init.exists() and not init.is_symlink():
        init.symlink_to("usr/lib/systemd/systemd")


def configure_access(context: Context) -> None:
    configure_ssh(context)
    configure_autologin(context)
    configure_initrd(context)
