"""The keys of one machine's SSH access, made fresh for it: a client key the host logs in with and a host key
for the guest's sshd, pinned on the host side (the guest's keys are never the image's, and nothing waits
for a first boot to make them). Used by `imagebuild qemu`/`boot`, and by pytest_mkosi's runners."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# The name the host pins the guest's host key to (ssh -o HostKeyAlias=, paramiko's known host entry).
HOST_KEY_ALIAS = "imagebuild-machine"
CLIENT_KEY = "id_ed25519"
HOST_KEY = "ssh_host_ed25519_key"
KNOWN_HOSTS = "known_hosts"


@dataclass(frozen=True)
class SshKeys:
    client_key: Path  # private, 0600; the host logs in with it
    client_public: str  # authorized_keys line
    host_key: Path  # sshd's private host key, 0600; handed to the guest
    host_public: str  # "ssh-ed25519 AAAA..."; the host pins the guest to it

    @property
    def known_hosts(self) -> Path:
        return self.client_key.parent / KNOWN_HOSTS


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_keypair(path: Path) -> str:
    """Write a fresh ed25519 private key to `path` (mode 0600); return its public key line."""
    key = Ed25519PrivateKey.generate()
    _write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


def make_keys(directory: Path) -> SshKeys:
    """A client key and a host key for one machine in `directory`, and a known_hosts file pinning the host key."""
    directory.mkdir(parents=True, exist_ok=True)
    client = make_keypair(directory / CLIENT_KEY) + " imagebuild\n"
    (directory / f"{CLIENT_KEY}.pub").write_text(client)
    host = make_keypair(directory / HOST_KEY)
    # For `ssh -o UserKnownHostsFile=... -o HostKeyAlias=...`.
    (directory / KNOWN_HOSTS).write_text(f"{HOST_KEY_ALIAS} {host}\n")
    return SshKeys(directory / CLIENT_KEY, client, directory / HOST_KEY, host)


def sshd_command(*, host_key: str, authorized_keys: str) -> str:
    """`sshd -i` as the guest runs it for the host: its keys given, no PAM, DNS or passwords."""
    return (
        f"/usr/sbin/sshd -i -e -o HostKey={host_key} -o AuthorizedKeysFile={authorized_keys}"
        # UsePAM=no: PAM would do a slow reverse lookup of a peer that has no address.
        " -o UsePAM=no -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no"
        " -o KbdInteractiveAuthentication=no -o UseDNS=no"
    )


def ssh_argv(*, key: Path, known_hosts: Path, proxy: list[str], user: str = "root") -> list[str]:
    """OpenSSH's command line for a machine behind `proxy` (a ProxyCommand argv), its host key pinned."""
    return ["ssh", "-F", "none", "-i", os.fspath(key), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", f"HostKeyAlias={HOST_KEY_ALIAS}", "-o", f"ProxyCommand={shlex.join(proxy)}",
            f"{user}@{HOST_KEY_ALIAS}"]
