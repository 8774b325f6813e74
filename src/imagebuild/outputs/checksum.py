"""Checksum= and Sign=: a SHA256SUMS file over the artifacts, and gpg's detached signature of it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.outputs.naming import checksum_name, signature_name
from imagebuild.tools.run import CommandError, find_tool, run

if TYPE_CHECKING:
    from imagebuild.config import Config


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(config: Config, artifacts: list[Path], directory: Path) -> Path:
    """SHA256SUMS in sha256sum's binary-mode format (`HASH *NAME`) over the artifacts that are files."""
    files = sorted((a for a in artifacts if a.is_file() and not a.is_symlink()), key=lambda a: a.name)
    path = directory / checksum_name(config)
    path.write_text("".join(f"{sha256(f)} *{f.name}\n" for f in files))
    return path


def sign_checksums(config: Config, sums: Path) -> Path:
    """gpg --detach-sign with Key= (else gpg's default key); $GNUPGHOME selects the keyring."""
    signature = sums.with_name(signature_name(config))
    argv = [find_tool("gpg", package="gpg"), "--batch", "--yes", "--detach-sign", "--output", str(signature)]
    if config.key:
        argv += ["--default-key", str(config.key)]
    try:
        run([*argv, str(sums)], what="gpg")
    except CommandError as e:
        last = (e.output.strip().splitlines() or [""])[-1]
        key = f"the key {config.key!r} (Key=)" if config.key else "a default secret key"
        raise BuildError(
            f"Sign=yes: gpg could not sign {sums.name} with {key}: {last}; import the key into the keyring "
            "($GNUPGHOME or ~/.gnupg) or set Key= to one that is there"
        ) from None
    return signature
