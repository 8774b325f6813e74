"""Real builds of the non-disk formats: names, manifests, signed checksums, the incremental cache,
byte-identical rebuilds with SourceDateEpoch=, Format=none, -B and clean.

One tiny image (Debian's essential set) built four times: A tar with Incremental=yes and -B; B the same
without the cache in another workspace (must equal A byte for byte); C cpio from the cache after
mkosi.extra changed; E Format=none with a build script. (cpio's reproducibility is checked by the unit tests.)
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imagebuild import paths
from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

EPOCH = 1_700_000_000
CONFIG = f"""\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format=tar
ImageId=tiny
ManifestFormat=json,changelog
SourceDateEpoch={EPOCH}

[Validation]
Sign=yes

[Host]
Incremental=yes
"""


@dataclass
class Builds:
    conf: Path
    tmp: Path
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _build(builds: Builds, name: str, *args: str) -> None:
    started = time.monotonic()
    result = imagebuild("-C", str(builds.conf), f"--package-cache-dir={paths.user_cache_home()}/imagebuild/packages",
                        f"--workspace-dir={builds.tmp}/ws-{name}", *args)
    builds.seconds[name] = time.monotonic() - started
    builds.results[name] = result
    assert result.returncode == 0, f"build {name}:\n{result.stderr}"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builds]:
    tmp = tmp_path_factory.mktemp("outputs")
    conf = write_config(tmp / "conf", CONFIG)
    (conf / "mkosi.cache").mkdir()
    (conf / "mkosi.version").write_text("1.0\n")
    (conf / "mkosi.extra/etc").mkdir(parents=True)
    (conf / "mkosi.extra/etc/marker").write_text("one\n")
    gnupg = tmp / "gnupg"
    gnupg.mkdir(mode=0o700)
    b = Builds(conf, tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GNUPGHOME", str(gnupg))
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Image Signer <signer@example.org>",
                        "ed25519", "sign", "never"], check=True, capture_output=True)
        try:
            _build(b, "A", "-B", "build")
            # B installs from scratch: neither the incremental cache nor the install cache.
            _build(b, "B", "--incremental=no", "--no-install-cache", "--image-version=1.0",
                   f"--output-dir={tmp}/out-B", "build")
            (conf / "mkosi.extra/etc/marker").write_text("two\n")
            _build(b, "C", "--format=cpio", "build")
            script = tmp / "write-output.sh"
            script.write_text('#!/bin/sh\necho "built from $IMAGE_VERSION" > "$OUTPUTDIR/result.txt"\n')
            script.chmod(0o755)
            _build(b, "E", "--format=none", f"--build-script={script}", f"--output-dir={tmp}/out-E", "build")
            yield b
        finally:
            subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], check=False, capture_output=True)


def test_versioned_names_symlink_and_auto_bump(builds: Builds) -> None:
    out = builds.conf / "mkosi.output"
    names = sorted(p.name for p in out.iterdir())
    assert {"tiny_1.0", "tiny_1.0.tar.zst", "tiny_1.0.manifest", "tiny_1.0.changelog", "tiny_1.0.SHA256SUMS",
            "tiny_1.0.SHA256SUMS.gpg"} <= set(names)
    assert os.readlink(out / "tiny_1.0") == "tiny_1.0.tar.zst"
    # -B bumped the version after build A, so build C is named after 1.1.
    assert (builds.conf / "mkosi.version").read_text() == "1.1\n"
    assert "tiny_1.1.cpio.zst" in names and os.readlink(out / "tiny_1.1") == "tiny_1.1.cpio.zst"


def test_tar_content_and_mtimes(builds: Builds, tmp_path: Path) -> None:
    archive = builds.conf / "mkosi.output/tiny_1.0.tar.zst"
    plain = tmp_path / "image.tar"
    subprocess.run(["zstd", "-q", "-d", str(archive), "-o", str(plain)], check=True)
    with tarfile.open(plain) as tar:
        members = {m.name: m for m in tar.getmembers()}
        marker = tar.extractfile("./etc/marker")
        assert marker is not None and marker.read() == b"one\n"
    assert members["./usr/bin/bash"].mode & 0o111
    assert max(m.mtime for m in members.values()) <= EPOCH
    assert members["./etc/marker"].mtime == EPOCH


def test_manifest_checksums_and_signature(builds: Builds) -> None:
    out = builds.conf / "mkosi.output"
    document = json.loads((out / "tiny_1.0.manifest").read_text())
    assert document["config"]["name"] == "tiny" and document["config"]["version"] == "1.0"
    bash = [p for p in document["packages"] if p["name"] == "bash"]
    assert bash and bash[0]["type"] == "deb" and bash[0]["version"] and bash[0]["size"] > 0
    changelog = (out / "tiny_1.0.changelog").read_text()
    assert "bash (" in changelog and " -- " in changelog
    sums = (out / "tiny_1.0.SHA256SUMS").read_text()
    assert "*tiny_1.0.tar.zst" in sums and "*tiny_1.0.manifest" in sums
    subprocess.run(["sha256sum", "--check", "--quiet", "--ignore-missing", "tiny_1.0.SHA256SUMS"], cwd=out, check=True)
    verify = subprocess.run(["gpg", "--verify", "tiny_1.0.SHA256SUMS.gpg", "tiny_1.0.SHA256SUMS"], cwd=out,
                            env={**os.environ, "GNUPGHOME": str(builds.tmp / "gnupg")}, capture_output=True,
                            text=True, check=False)
    assert verify.returncode == 0 and "Image Signer" in verify.stderr


def test_rebuild_without_cache_elsewhere_is_byte_identical(builds: Builds) -> None:
    assert "Reusing the cached image" not in builds.results["B"].stderr
    first = (builds.conf / "mkosi.output/tiny_1.0.tar.zst").read_bytes()
    assert (builds.tmp / "out-B/tiny_1.0.tar.zst").read_bytes() == first


def test_incremental_build_reuses_the_cache_and_sees_new_extra_files(builds: Builds, tmp_path: Path) -> None:
    assert "Reusing the cached image" in builds.results["C"].stderr
    assert "install the distribution and packages" not in builds.results["C"].stderr
    assert builds.seconds["C"] < builds.seconds["B"]
    plain = tmp_path / "image.cpio"
    subprocess.run(["zstd", "-q", "-d", str(builds.conf / "mkosi.output/tiny_1.1.cpio.zst"), "-o", str(plain)],
                   check=True)
    with plain.open("rb") as archive:
        marker = subprocess.run(["cpio", "-i", "--quiet", "--to-stdout", "etc/marker"], stdin=archive,
                                capture_output=True, check=True).stdout
    assert marker == b"two\n"


def test_format_none_publishes_only_the_build_scripts_output(builds: Builds) -> None:
    out = builds.tmp / "out-E"
    assert sorted(p.name for p in out.iterdir()) == ["result.txt", "tiny_1.1.SHA256SUMS", "tiny_1.1.SHA256SUMS.gpg"]
    assert (out / "result.txt").read_text() == "built from 1.1\n"


def test_clean_levels(builds: Builds) -> None:
    args = ["-C", str(builds.conf)]
    cache = builds.conf / "mkosi.cache"
    assert any(cache.glob("*.cache"))
    assert imagebuild(*args, "clean").returncode == 0
    assert not any((builds.conf / "mkosi.output").glob("tiny_1.1*"))
    assert any(cache.glob("*.cache"))
    assert imagebuild(*args, "-f", "clean").returncode == 0
    assert not any(cache.glob("*.cache")) and not any(cache.glob("*.json"))
