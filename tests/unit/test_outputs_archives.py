"""tar and cpio archives are byte-identical for identical trees, keep owners, and compress as asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from imagebuild.errors import BuildError
from imagebuild.outputs.archive import cpio_entries, make_cpio, make_tar
from imagebuild.outputs.compress import COMPRESSORS, compress
from imagebuild.outputs.timestamps import clamp_mtimes

EPOCH = 1_700_000_000


def make_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("host\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\n")
    (root / "usr/bin/tool").chmod(0o755)
    (root / "bin").symlink_to("usr/bin")
    (root / "a-b").write_text("x")
    clamp_mtimes(root, EPOCH)
    return root


def test_clamp_only_touches_newer_entries(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_text("")
    os.utime(old, (1000, 1000))
    new = tmp_path / "new"
    new.write_text("")
    link = tmp_path / "link"
    link.symlink_to("/nonexistent")
    clamp_mtimes(tmp_path, EPOCH)
    assert old.stat().st_mtime == 1000
    assert new.stat().st_mtime == EPOCH
    assert link.lstat().st_mtime == EPOCH


def test_tar_is_reproducible_and_complete(tmp_path: Path) -> None:
    first = make_tar(make_tree(tmp_path / "one"), tmp_path / "one.tar")
    second = make_tar(make_tree(tmp_path / "two"), tmp_path / "two.tar")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["./usr/bin/tool"].mode == 0o755
    assert members["./bin"].issym() and members["./bin"].linkname == "usr/bin"
    assert members["./etc/hostname"].mtime == EPOCH
    assert b"PaxHeaders." not in first.read_bytes()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_tar_and_cpio_keep_numeric_owners(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root")
    os.chown(root / "etc/hostname", 4242, 4243)
    with tarfile.open(make_tar(root, tmp_path / "x.tar")) as tar:
        member = tar.getmember("./etc/hostname")
    assert (member.uid, member.gid) == (4242, 4243)
    listing = subprocess.run(["cpio", "-itv", "--numeric-uid-gid", "-F", str(make_cpio(root, tmp_path / "x.cpio"))],
                             capture_output=True, text=True, check=True).stdout
    assert any("4242" in line and "4243" in line and "etc/hostname" in line for line in listing.splitlines())


def test_cpio_is_reproducible_and_ordered(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one")
    entries = cpio_entries(one)
    assert entries.index("./usr") < entries.index("./usr/bin") < entries.index("./usr/bin/tool")
    assert "./bin" in entries and "./bin/tool" not in entries
    first = make_cpio(one, tmp_path / "one.cpio")
    second = make_cpio(make_tree(tmp_path / "two"), tmp_path / "two.cpio")
    assert first.read_bytes() == second.read_bytes()
    listing = subprocess.run(["cpio", "-it", "-F", str(first)], capture_output=True, text=True, check=True).stdout
    assert "usr/bin/tool" in listing.split()


@pytest.mark.parametrize(("compression", "suffix", "magic"), [
    ("zstd", ".zst", b"\x28\xb5\x2f\xfd"),
    ("xz", ".xz", b"\xfd7zXZ"),
    ("gz", ".gz", b"\x1f\x8b"),
    ("bz2", ".bz2", b"BZh"),
    ("lz4", ".lz4", b"\x04\x22\x4d\x18"),
])
def test_compress(tmp_path: Path, compression: str, suffix: str, magic: bytes) -> None:
    if shutil.which(COMPRESSORS[compression][0]) is None:
        pytest.skip(f"no {compression} on this host")
    source = tmp_path / "image.tar"
    source.write_bytes(b"data" * 1000)
    result = compress(source, compression, 3)
    assert result.name == "image.tar" + suffix
    assert result.read_bytes().startswith(magic)
    assert not source.exists()


def test_archive_streams_into_the_compressor(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root")
    archive = make_tar(root, tmp_path / "image.tar", "zstd", 3)
    assert archive.name == "image.tar.zst" and not (tmp_path / "image.tar").exists()
    plain = subprocess.run(["zstd", "-d", "-c", str(archive)], capture_output=True, check=True).stdout
    assert plain == make_tar(root, tmp_path / "plain.tar").read_bytes()
    cpio = make_cpio(root, tmp_path / "image.cpio", "gz", 6)
    assert cpio.read_bytes().startswith(b"\x1f\x8b")


def test_failed_archiver_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"tar of image\.tar failed"):
        make_tar(tmp_path / "missing", tmp_path / "image.tar", "zstd", 3)
    assert list(tmp_path.iterdir()) == []


def test_compress_none_keeps_the_file(tmp_path: Path) -> None:
    source = tmp_path / "image.tar"
    source.write_text("x")
    assert compress(source, "none", 3) == source and source.exists()


def test_bad_compress_level_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "image.tar"
    source.write_text("x")
    with pytest.raises(BuildError, match=r"CompressLevel=42: zstd takes levels 1 to 19"):
        compress(source, "zstd", 42)
    assert source.exists()
