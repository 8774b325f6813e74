"""rpm repositories as dnf and zypper read them, GPG keys, and the rpm database location."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.installers.common import package_manager_dir

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# Where the distribution-gpg-keys package keeps the keys of every rpm distribution.
GPG_KEYS_DIR = Path("usr/share/distribution-gpg-keys")


@dataclass(frozen=True)
class RpmRepository:
    """One [section] of a .repo file.

    url is the whole source line: "baseurl=...", "metalink=..." or "mirrorlist=...".
    """

    id: str
    url: str
    gpgurls: tuple[str, ...]
    enabled: bool = True
    sslcacert: Path | None = None
    sslclientkey: Path | None = None
    sslclientcert: Path | None = None

    def section(self, *, extra: Sequence[str] = ()) -> str:
        lines = [f"[{self.id}]", f"name={self.id}", self.url, "gpgcheck=1", f"enabled={int(self.enabled)}"]
        lines += extra
        if self.gpgurls:
            # Continuation lines: one key per line, indented under the first.
            lines.append("gpgkey=" + "\n       ".join(self.gpgurls))
        for option in ("sslcacert", "sslclientkey", "sslclientcert"):
            value = getattr(self, option)
            if value is not None:
                lines.append(f"{option}={value}")
        return "\n".join(lines) + "\n"


def join_mirror(mirror: str, path: str) -> str:
    """A path below a Mirror= URL, whether or not the URL ends in a slash."""
    return f"{mirror.rstrip('/')}/{path.lstrip('/')}"


def repo_file(repos: Iterable[RpmRepository], *, extra: Sequence[str] = ()) -> str:
    return "\n".join(repo.section(extra=extra) for repo in repos)


def find_gpgkey(context: Context, key: str, url: str | None) -> str | None:
    """A file:// URL of the key named `key` where the host (or tools tree) has it, else `url`.

    distribution-gpg-keys is looked up first (mkosi does the same), then etc/pki/rpm-gpg of the package
    manager directory. The file:// path is where the package manager sees it: with a tools tree, its /usr
    takes the place of the host's.
    """
    base = context.tools_tree if context.tools_tree is not None else Path("/")
    keys = base / GPG_KEYS_DIR
    if keys.is_dir():
        found = next(iter(sorted(keys.rglob(key))), None)
        if found is not None:
            return f"file://{Path('/') / found.relative_to(base)}"
    pki = package_manager_dir(context) / "etc/pki/rpm-gpg"
    if pki.is_dir():
        found = next(iter(sorted(pki.rglob(key))), None)
        if found is not None:
            return f"file://{found}"
    return url


def repository_ids(directory: Path) -> set[str]:
    """The [sections] of the .repo files in directory: ours and those of PackageManagerTrees=."""
    ids: set[str] = set()
    if directory.is_dir():
        for file in directory.glob("*.repo"):
            ids |= set(re.findall(r"^\[([^\]]+)\]", file.read_text(errors="replace"), flags=re.MULTILINE))
    return ids


def check_repositories(config: Config, repos: Sequence[RpmRepository], pretty: str,
                       others: Iterable[str] = ()) -> None:
    """Repositories= names repositories to enable; refuse names that no repository file defines."""
    known = {repo.id for repo in repos} | set(others)
    unknown = [name for name in config.repositories if name not in known]
    if unknown:
        disabled = sorted(repo.id for repo in repos if not repo.enabled)
        raise BuildError(
            f"Repositories={','.join(unknown)}: no such repository for {pretty} {config.release}"
            + (f" (repositories that can be enabled: {', '.join(disabled)})" if disabled else "")
        )


def fixup_rpmdb_location(root: Path) -> None:
    """Move an rpm database that Debian's rpm put in /root/.rpmdb back to where the image's rpm looks.

    Debian patches rpm to keep its database under $HOME (https://bugs.debian.org/1004863); an image built
    with the host's rpm would otherwise look like it has no packages installed.
    """
    home_db = root / "root/.rpmdb"
    if not home_db.exists() or home_db.is_symlink():
        return
    rpmdb = root / "usr/lib/sysimage/rpm"
    if not rpmdb.exists():
        rpmdb = root / "var/lib/rpm"
    # zypper links /var/lib/rpm to the database in $HOME: that link is replaced by the database itself.
    if rpmdb.is_symlink():
        rpmdb.unlink()
    shutil.rmtree(rpmdb, ignore_errors=True)
    rpmdb.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(home_db, rpmdb)
    home_db.symlink_to(os.path.relpath(rpmdb, start=home_db.parent))
