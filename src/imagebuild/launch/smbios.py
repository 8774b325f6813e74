"""Credentials for the guest's systemd as SMBIOS type 11 strings (systemd imports them at boot).

Anything that may be a secret goes through a 0600 file that qemu reads: a value on qemu's command line can
be read by every user of the host (/proc/PID/cmdline)."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path


def _string(name: str, data: bytes) -> str:
    return f"io.systemd.credential.binary:{name}={base64.b64encode(data).decode()}"


def smbios_credential(name: str, data: bytes) -> list[str]:
    """One credential that is no secret, on the command line."""
    return ["-smbios", f"type=11,value={_string(name, data)}"]


def smbios_credential_file(name: str, data: bytes, path: Path) -> list[str]:
    """One credential that qemu reads from `path` (written here, mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_string(name, data))
    return ["-smbios", f"type=11,path={path}"]


def smbios_credential_files(credentials: Mapping[str, str], directory: Path) -> list[str]:
    """Each of `credentials` (Credentials=: users pass passwords and keys this way) through a file of its own
    in `directory` (made 0700 if need be), named by position: a credential's name need not make a file name."""
    if not credentials:
        return []
    directory.mkdir(mode=0o700, exist_ok=True)
    args: list[str] = []
    for number, (name, value) in enumerate(sorted(credentials.items())):
        args += smbios_credential_file(name, value.encode(), directory / f"{number}.smbios")
    return args
