"""The install cache: a warm build copies the installed tree; a changed package list installs again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

CONF = "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=directory\n[Content]\nPackages=apt\n"


def test_warm_build_copies_the_installed_tree(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "conf", CONF)
    (conf / "mkosi.extra/etc").mkdir(parents=True)
    (conf / "mkosi.extra/etc/marker").write_text("one\n")
    args = ["-C", str(conf), f"--package-cache-dir={tmp_path}/cache", f"--output-dir={tmp_path}/out", "-f"]
    cold = imagebuild(*args, "build")
    assert cold.returncode == 0, cold.stderr
    assert "install the distribution and packages took" in cold.stderr
    assert len(list((tmp_path / "cache/installed").glob("debian~trixie~x86-64-*/entry.json"))) == 1
    (conf / "mkosi.extra/etc/marker").write_text("two\n")
    started = time.monotonic()
    warm = imagebuild(*args, "build")
    elapsed = time.monotonic() - started
    assert warm.returncode == 0, warm.stderr
    assert "Reusing the installed tree" in warm.stderr
    assert "install the distribution and packages" not in warm.stderr
    assert (tmp_path / "out/image/etc/marker").read_text() == "two\n"
    assert (tmp_path / "out/image/usr/bin/apt-get").exists()
    # Neither the host's name nor its resolver configuration (mmdebstrap copies both in) is in the image.
    assert not (tmp_path / "out/image/etc/hostname").exists()
    assert not (tmp_path / "out/image/etc/resolv.conf").exists()
    print(f"warm build: {elapsed:.1f} s")
    # --no-install-cache installs again; another package list is another entry.
    off = imagebuild(*args, "--no-install-cache", "build")
    assert off.returncode == 0 and "install the distribution and packages took" in off.stderr, off.stderr
    setting = imagebuild(*args, "--install-cache=no", "build")  # the setting's command-line form
    assert setting.returncode == 0 and "install the distribution and packages took" in setting.stderr, setting.stderr
    more = imagebuild(*args, "--package=netbase", "build")
    assert more.returncode == 0 and "install the distribution and packages took" in more.stderr, more.stderr
    assert (tmp_path / "out/image/etc/protocols").exists()
    assert len(list((tmp_path / "cache/installed").glob("debian~trixie~x86-64-*/entry.json"))) == 2
