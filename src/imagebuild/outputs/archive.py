"""tar and cpio archives of a tree whose bytes depend only on the tree's content.

Entries are sorted by name, owners are numeric (the image's, not the host's names), and nothing of the
archiving run (pids, access or change times, inode numbers) goes into the archive. The archiver writes
to a pipe into the compressor, so the uncompressed archive never touches the disk.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from imagebuild.outputs.compress import write_compressed
from imagebuild.tools.run import find_tool


def tar_argv(root: Path) -> list[str]:
    return [
        find_tool("tar", package="tar"),
        "--create",
        "--file=-",
        f"--directory={root}",
        "--sort=name",
        "--numeric-owner",
        # xattrs (file capabilities, SELinux labels) and ACLs need the pax format.
        "--format=pax",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "--sparse",
        # The default extended-header names contain tar's pid; atime and ctime change on every run.
        "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
        ".",
    ]


def make_tar(root: Path, destination: Path, compression: str = "none", level: int = 3) -> Path:
    """Write root as destination (plus the compression's suffix); return the file written."""
    return write_compressed(tar_argv(root), destination, compression, level, what="tar")


def cpio_entries(root: Path) -> list[str]:
    """Every entry below root as ./relative/path, parents before children, in byte order."""
    entries: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(directory, root)
        prefix = "." if rel == "." else f"./{rel}"
        # os.walk does not descend into symlinks to directories; they are listed as entries.
        entries += [f"{prefix}/{name}" for name in dirnames + filenames]
    return sorted(entries, key=os.fsencode)


def make_cpio(root: Path, destination: Path, compression: str = "none", level: int = 3) -> Path:
    """Write root as a newc cpio archive (the initrd format) at destination (plus the compression's suffix)."""
    argv = [find_tool("cpio", package="cpio"), "--create", "--reproducible", "--null", "--format=newc",
            "--quiet", f"--directory={root}"]
    with tempfile.TemporaryFile() as names:
        names.write(b"".join(os.fsencode(e) + b"\0" for e in cpio_entries(root)))
        names.seek(0)
        return write_compressed(argv, destination, compression, level, what="cpio", stdin=names.fileno())
