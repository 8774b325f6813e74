"""Output names as mkosi v22 derives them: Output=, ImageId=, ImageVersion=, format and compression."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.outputs import naming
from tests.helpers import write_config


def config(tmp_path: Path, text: str, *args: str) -> Config:
    write_config(tmp_path / "conf", "[Distribution]\nDistribution=debian\nRelease=trixie\n" + text)
    _, images = load(["-C", str(tmp_path / "conf"), *args, "build"])
    return images[-1]


@pytest.mark.parametrize(("text", "expected"), [
    ("[Output]\nFormat=tar\n", "image.tar.zst"),
    ("[Output]\nFormat=cpio\n", "image.cpio.zst"),
    ("[Output]\nFormat=tar\nCompressOutput=xz\n", "image.tar.xz"),
    ("[Output]\nFormat=tar\nCompressOutput=gzip\n", "image.tar.gz"),
    ("[Output]\nFormat=tar\nCompressOutput=no\n", "image.tar"),
    ("[Output]\nFormat=directory\n", "image"),
    ("[Output]\nFormat=disk\n", "image.raw"),
    ("[Output]\nFormat=disk\nCompressOutput=yes\n", "image.raw.zst"),
    ("[Output]\nFormat=uki\n", "image.efi"),
    ("[Output]\nFormat=tar\nImageId=foo\n", "foo.tar.zst"),
    ("[Output]\nFormat=tar\nImageId=foo\nImageVersion=7.8\n", "foo_7.8.tar.zst"),
    ("[Output]\nFormat=disk\nImageVersion=7.8\nCompressOutput=xz\n", "image_7.8.raw.xz"),
    ("[Output]\nFormat=tar\nOutput=custom\nImageVersion=7.8\n", "custom.tar.zst"),
])
def test_artifact_name(tmp_path: Path, text: str, expected: str) -> None:
    assert naming.artifact_name(config(tmp_path, text)) == expected


def test_version_from_mkosi_version_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/mkosi.version").write_text("3.1\n")
    c = config(tmp_path, "[Output]\nFormat=tar\nImageId=os\nManifestFormat=json\n")
    assert naming.artifact_name(c) == "os_3.1.tar.zst"
    assert naming.checksum_name(c) == "os_3.1.SHA256SUMS"
    assert naming.signature_name(c) == "os_3.1.SHA256SUMS.gpg"
    assert naming.manifest_name(c) == "os_3.1.manifest"
    assert naming.changelog_name(c) == "os_3.1.changelog"
