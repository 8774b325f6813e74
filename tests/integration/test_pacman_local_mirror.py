"""A real pacman install (Arch Linux's code path) from a LocalMirror= made here.

Arch's mirrors are out of reach, so the repository is written on the spot with the standard library: two
packages (.pkg.tar.gz with their .PKGINFO) and the core.db that indexes them. Needs the host package
pacman-package-manager.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

# name, version, dependencies, files (path → (content or symlink target, mode, is_symlink))
PACKAGES: list[tuple[str, str, list[str], dict[str, tuple[str, int, bool]]]] = [
    ("filesystem", "1-1", [], {"bin": ("usr/bin", 0o777, True), "etc/layout": ("layout\n", 0o644, False)}),
    ("hello", "2-1", ["filesystem"], {"usr/bin/hello": ("#!/bin/sh\necho hello\n", 0o755, False)}),
]


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", *, mode: int = 0o644, kind: bytes = tarfile.REGTYPE,
        link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.type, info.linkname, info.mtime = mode, kind, link, 1700000000
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_package(directory: Path, name: str, version: str, depends: list[str],
                 files: dict[str, tuple[str, int, bool]]) -> Path:
    path = directory / f"{name}-{version}-any.pkg.tar.gz"
    pkginfo = "".join(f"{k} = {v}\n" for k, v in (("pkgname", name), ("pkgbase", name), ("pkgver", version),
                                                  ("pkgdesc", "test"), ("builddate", "1700000000"),
                                                  ("size", "100"), ("arch", "any"), ("license", "MIT")))
    pkginfo += "".join(f"depend = {d}\n" for d in depends)
    with tarfile.open(path, "w:gz") as tar:
        add(tar, ".PKGINFO", pkginfo.encode())
        directories = sorted({str(p) for f in files for p in Path(f).parents if str(p) != "."})
        for d in directories:
            add(tar, d, mode=0o755, kind=tarfile.DIRTYPE)
        for file, (content, mode, symlink) in files.items():
            if symlink:
                add(tar, file, kind=tarfile.SYMTYPE, link=content)
            else:
                add(tar, file, content.encode(), mode=mode)
    return path


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("pacman-repo")
    with tarfile.open(repo / "core.db.tar.gz", "w:gz") as db:
        for name, version, depends, files in PACKAGES:
            package = make_package(repo, name, version, depends, files)
            data = package.read_bytes()
            desc = (f"%FILENAME%\n{package.name}\n\n%NAME%\n{name}\n\n%VERSION%\n{version}\n\n"
                    f"%CSIZE%\n{len(data)}\n\n%ISIZE%\n100\n\n%SHA256SUM%\n{hashlib.sha256(data).hexdigest()}\n\n"
                    "%ARCH%\nany\n\n")
            if depends:
                desc += "%DEPENDS%\n" + "".join(f"{d}\n" for d in depends) + "\n"
            add(db, f"{name}-{version}", mode=0o755, kind=tarfile.DIRTYPE)
            add(db, f"{name}-{version}/desc", desc.encode())
    (repo / "core.db").symlink_to("core.db.tar.gz")
    return repo


def config(directory: Path, repo: Path, packages: str) -> Path:
    return write_config(directory, f"""\
[Distribution]
Distribution=arch
LocalMirror=file://{repo}
RepositoryKeyCheck=no
[Output]
Format=directory
Output=arch
[Content]
Packages={packages}
CleanPackageMetadata=no
""")


def test_pacman_installs_from_the_local_mirror(repository: Path, tmp_path: Path) -> None:
    conf = config(tmp_path / "conf", repository, "hello")
    cache = tmp_path / "cache"
    result = imagebuild("-C", str(conf), f"--output-dir={tmp_path / 'out'}", f"--package-cache-dir={cache}",
                        "--debug", "build")
    assert result.returncode == 0, result.stderr
    tree = tmp_path / "out/arch"
    assert (tree / "usr/bin/hello").read_text() == "#!/bin/sh\necho hello\n"
    assert (tree / "bin").is_symlink() and (tree / "etc/layout").read_text() == "layout\n"
    # pacman's own record of what is installed, and the package files kept in the cache for the next build.
    assert sorted(p.name for p in (tree / "var/lib/pacman/local").iterdir() if p.is_dir()) == [
        "filesystem-1-1", "hello-2-1"]
    assert sorted(p.name for p in (cache / "arch").glob("*.pkg.tar.gz")) == [
        "filesystem-1-1-any.pkg.tar.gz", "hello-2-1-any.pkg.tar.gz"]
    assert (cache / "arch/sync/core.db").exists()
    assert "--assume-installed initramfs" in result.stderr


def test_missing_package_is_one_clear_line(repository: Path, tmp_path: Path) -> None:
    conf = config(tmp_path / "conf", repository, "hello,no-such-program")
    out = tmp_path / "out"
    result = imagebuild("-C", str(conf), f"--output-dir={out}", f"--package-cache-dir={tmp_path / 'cache'}", "build")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Packages=: no package named no-such-program in Arch Linux (x86_64)" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
