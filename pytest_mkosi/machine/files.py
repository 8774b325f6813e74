"""copy_to / copy_from: files and whole trees over SFTP on the machine's SSH transport."""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

import paramiko


def copy_to(sftp: paramiko.SFTPClient, host_path: Path, guest_path: str) -> None:
    """Copy a host file, symlink or tree to `guest_path` (which it becomes), keeping modes."""
    info = host_path.lstat()
    if stat.S_ISLNK(info.st_mode):
        sftp.symlink(os.readlink(host_path), guest_path)
    elif stat.S_ISDIR(info.st_mode):
        _mkdir(sftp, guest_path, stat.S_IMODE(info.st_mode))
        for child in sorted(host_path.iterdir()):
            copy_to(sftp, child, posixpath.join(guest_path, child.name))
    elif stat.S_ISREG(info.st_mode):
        sftp.put(str(host_path), guest_path)
        sftp.chmod(guest_path, stat.S_IMODE(info.st_mode))
    else:
        raise ValueError(f"cannot copy {host_path}: not a file, directory or symlink")


def copy_from(sftp: paramiko.SFTPClient, guest_path: str, host_path: Path) -> None:
    """Copy a guest file, symlink or tree to `host_path` (which it becomes), keeping modes."""
    info = sftp.lstat(guest_path)
    mode = info.st_mode or 0
    if stat.S_ISLNK(mode):
        os.symlink(sftp.readlink(guest_path) or "", host_path)
    elif stat.S_ISDIR(mode):
        host_path.mkdir(exist_ok=True)
        for entry in sorted(sftp.listdir(guest_path)):
            copy_from(sftp, posixpath.join(guest_path, entry), host_path / entry)
        host_path.chmod(stat.S_IMODE(mode))
    elif stat.S_ISREG(mode):
        sftp.get(guest_path, str(host_path))
        host_path.chmod(stat.S_IMODE(mode))
    else:
        raise ValueError(f"cannot copy {guest_path}: not a file, directory or symlink")


def _mkdir(sftp: paramiko.SFTPClient, path: str, mode: int) -> None:
    try:
        if stat.S_ISDIR(sftp.stat(path).st_mode or 0):
            sftp.chmod(path, mode)
            return
    except FileNotFoundError:
        pass
    sftp.mkdir(path, mode)
