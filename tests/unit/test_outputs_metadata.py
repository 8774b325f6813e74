"""Manifests, SHA256SUMS and their signature, bump, clean and the incremental cache key."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.errors import ImageBuildError
from imagebuild.outputs import checksum, manifest
from imagebuild.pipeline import incremental
from imagebuild.verbs import bump, clean
from tests.helpers import imagebuild, write_config

STATUS = """\
Package: libc6
Status: install ok installed
Installed-Size: 12000
Architecture: amd64
Source: glibc (2.41-12)
Version: 2.41-12+b1
Description: GNU C Library
 a continuation line

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: bash
Status: install ok installed
Installed-Size: 7000
Architecture: amd64
Version: 5.2.37-2
"""

BASE = "[Distribution]\nDistribution=debian\nRelease=trixie\n"


def config(directory: Path, text: str = "", *args: str) -> Config:
    write_config(directory, BASE + text)
    _, images = load(["-C", str(directory), *args, "build"])
    return images[-1]


def test_dpkg_status_lists_installed_packages_only() -> None:
    packages = manifest.parse_dpkg_status(STATUS)
    assert [(p.name, p.version, p.architecture, p.size) for p in packages] == [
        ("bash", "5.2.37-2", "amd64", 7000 * 1024),
        ("libc6", "2.41-12+b1", "amd64", 12000 * 1024),
    ]
    assert (packages[1].source, packages[1].source_version) == ("glibc", "2.41-12")
    assert (packages[0].source, packages[0].source_version) == ("bash", "5.2.37-2")


def test_json_manifest_and_changelog(tmp_path: Path) -> None:
    c = config(tmp_path / "conf", "[Output]\nImageId=os\nImageVersion=2\n")
    packages = manifest.parse_dpkg_status(STATUS)
    document = json.loads(manifest.json_manifest(c, packages))
    assert document["manifest_version"] == 1
    assert document["config"] == {"name": "os", "version": "2", "architecture": str(c.architecture),
                                  "distribution": "debian", "release": "trixie"}
    assert document["packages"][0] == {"type": "deb", "name": "bash", "version": "5.2.37-2",
                                       "architecture": "amd64", "size": 7000 * 1024}
    root = tmp_path / "root"
    (root / "usr/share/doc/libc6").mkdir(parents=True)
    with gzip.open(root / "usr/share/doc/libc6/changelog.Debian.gz", "wt") as f:
        f.write("glibc (2.41-12) unstable; urgency=medium\n\n  * A fix.\n")
    text = manifest.changelog(root, packages)
    assert "glibc 2.41-12 (libc6)\nglibc (2.41-12) unstable" in text
    assert "bash 5.2.37-2 (bash)\n  (no changelog in the image or the package cache)" in text


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="no dpkg-deb")
def test_changelog_from_the_package_cache(tmp_path: Path) -> None:
    # WithDocs=no leaves no changelog in the image; the .deb apt downloaded has it.
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text("Package: bash\nVersion: 1:5.2.37-2\nArchitecture: amd64\n"
                                         "Maintainer: x <x@example.org>\nDescription: test\n")
    (tree / "usr/share/doc/bash").mkdir(parents=True)
    with gzip.open(tree / "usr/share/doc/bash/changelog.Debian.gz", "wt") as f:
        f.write("bash (1:5.2.37-2) unstable; urgency=medium\n")
    archives = tmp_path / "archives"
    archives.mkdir()
    packages = [manifest.Package("bash", "1:5.2.37-2", "amd64", 0, "bash", "1:5.2.37-2")]
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree),
                    str(manifest.deb_file(archives, packages[0]))], check=True, capture_output=True)
    assert (archives / "bash_1%3a5.2.37-2_amd64.deb").exists()
    text = manifest.changelog(tmp_path / "empty-root", packages, archives)
    assert "bash 1:5.2.37-2 (bash)\nbash (1:5.2.37-2) unstable" in text


@pytest.fixture
def gnupg_home(tmp_path: Path) -> Iterator[Path]:
    """A throwaway keyring; its gpg-agent is stopped afterwards (it would hold pytest's output open)."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)


def test_checksums_and_signature(tmp_path: Path, gnupg_home: Path) -> None:
    c = config(tmp_path / "conf", "[Output]\nFormat=tar\n[Validation]\nSign=yes\n")
    assert c.checksum  # Sign= implies Checksum=
    out = tmp_path / "out"
    out.mkdir()
    (out / "image.tar.zst").write_bytes(b"archive")
    (out / "image.manifest").write_text("{}")
    (out / "image").symlink_to("image.tar.zst")
    sums = checksum.write_checksums(c, sorted(out.iterdir()), out)
    assert sums.name == "image.SHA256SUMS"
    assert sums.read_text().splitlines()[0].endswith(" *image.manifest")
    subprocess.run(["sha256sum", "--check", "--quiet", sums.name], cwd=out, check=True)
    if shutil.which("gpg") is None:
        pytest.skip("no gpg")
    home = gnupg_home
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Test <test@example.org>",
                    "ed25519", "sign", "never"], env=env, check=True, capture_output=True)
    os.environ["GNUPGHOME"] = str(home)
    try:
        signature = checksum.sign_checksums(c, sums)
    finally:
        del os.environ["GNUPGHOME"]
    assert signature.name == "image.SHA256SUMS.gpg"
    subprocess.run(["gpg", "--verify", str(signature), str(sums)], env=env, check=True, capture_output=True)


def test_sign_without_a_key_is_a_clear_error(
    tmp_path: Path, gnupg_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("gpg") is None:
        pytest.skip("no gpg")
    monkeypatch.setenv("GNUPGHOME", str(gnupg_home))
    c = config(tmp_path / "conf", "[Validation]\nSign=yes\nKey=nobody@example.org\n")
    sums = tmp_path / "image.SHA256SUMS"
    sums.write_text("")
    with pytest.raises(ImageBuildError, match=r"Sign=yes: gpg could not sign .*Key="):
        checksum.sign_checksums(c, sums)


@pytest.mark.parametrize(("old", "new"), [("1", "2"), ("1.2.9", "1.2.10"), ("0.1~rc", "0.1~rc.2")])
def test_next_version(old: str, new: str) -> None:
    assert bump.next_version(old) == new


def test_bump_rewrites_mkosi_version(tmp_path: Path) -> None:
    (tmp_path / "mkosi.version").write_text("1.4\n")
    assert bump.bump_version_file(tmp_path) == ("1.4", "1.5")
    assert (tmp_path / "mkosi.version").read_text() == "1.5\n"
    with pytest.raises(ImageBuildError, match=r"mkosi\.version: no such file"):
        bump.bump_version_file(tmp_path / "elsewhere")


def test_clean_levels(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "mkosi.cache").mkdir(parents=True)
    (conf / "mkosi.builddir").mkdir()
    c = config(conf, "[Output]\nFormat=tar\n[Host]\nIncremental=yes\n")
    out = conf / "mkosi.output"
    out.mkdir()
    for name in ("image.tar.zst", "image.SHA256SUMS", "image.manifest", "other.tar.zst", "image_2.tar"):
        (out / name).write_text("x")
    (out / "image").symlink_to("image.tar.zst")
    for path in incremental.cache_files(c):
        path.mkdir() if path.suffix == ".cache" else path.write_text("{}")
    packages = conf / "mkosi.cache/packages/debian"
    packages.mkdir(parents=True)
    build_directory = Path(c.build_directory or "")
    build_directory.mkdir()
    (build_directory / "obj.o").write_text("")

    clean.clean_image(c, 0)
    assert sorted(p.name for p in out.iterdir()) == ["image_2.tar", "other.tar.zst"]
    assert all(p.exists() for p in incremental.cache_files(c))
    clean.clean_image(c, 1)
    assert not any(p.exists() for p in incremental.cache_files(c))
    assert packages.exists() and list(build_directory.iterdir()) == []
    clean.clean_image(c, 2)
    assert not packages.exists() and build_directory.is_dir()


def test_incremental_key_covers_install_inputs_only(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "mkosi.cache").mkdir(parents=True)
    (conf / "mkosi.skeleton").mkdir()
    (conf / "mkosi.extra").mkdir()
    (conf / "mkosi.skeleton/file").write_text("1")
    (conf / "mkosi.extra/file").write_text("1")
    text = "[Content]\nPackages=bash\n[Host]\nIncremental=yes\n"
    key = incremental.cache_key(config(conf, text))
    # What comes after the install stages does not matter.
    (conf / "mkosi.extra/file").write_text("2")
    assert incremental.cache_key(config(conf, text, "--format=tar", "--hostname=other")) == key
    assert incremental.cache_key(config(conf, text, "--image-version=2", "--image-id=x")) == key
    # Packages, the release, skeleton trees and prepare scripts do.
    assert incremental.cache_key(config(conf, text.replace("bash", "bash,zsh"))) != key
    assert incremental.cache_key(config(conf, text, "--release=sid")) != key
    (conf / "mkosi.skeleton/file").write_text("2")
    assert incremental.cache_key(config(conf, text)) != key
    key = incremental.cache_key(config(conf, text))
    (conf / "mkosi.prepare").write_text("#!/bin/sh\n")
    (conf / "mkosi.prepare").chmod(0o755)
    assert incremental.cache_key(config(conf, text)) != key


def test_auto_bump_without_version_file_fails_before_building(tmp_path: Path) -> None:
    write_config(tmp_path / "conf", BASE + "[Output]\nFormat=tar\n")
    result = imagebuild("-C", str(tmp_path / "conf"), f"--output-dir={tmp_path}/out", "-B", "build", timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "mkosi.version: no such file" in result.stderr and "Building" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_bump_verb(tmp_path: Path) -> None:
    write_config(tmp_path / "conf", BASE)
    (tmp_path / "conf/mkosi.version").write_text("41\n")
    assert imagebuild("-C", str(tmp_path / "conf"), "bump", timeout=60).returncode == 0
    assert (tmp_path / "conf/mkosi.version").read_text() == "42\n"
