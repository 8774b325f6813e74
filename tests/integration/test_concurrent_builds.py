"""Builds at once that share one package cache (xdist workers, two sessions, a matrix) do not interfere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_config

pytestmark = pytest.mark.integration

# apt (not essential) makes mmdebstrap run a real apt-get install, which holds apt's archive lock throughout.
SMALL = "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=directory\n[Content]\nPackages=apt\n"


def start(conf: Path, cache: Path, out: Path) -> subprocess.Popen[str]:
    # Without the install cache: the builds must really run apt at the same time.
    return subprocess.Popen(
        [sys.executable, "-m", "imagebuild", "-C", str(conf), f"--package-cache-dir={cache}",
         f"--output-dir={out}", "--no-install-cache", "build"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_two_builds_at_once_share_the_package_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # A first build fills the cache, as an earlier session would have.
    first = start(write_config(tmp_path / "warm", SMALL), cache, tmp_path / "out-warm")
    output, _ = first.communicate(timeout=900)
    assert first.returncode == 0, output
    builds = [start(write_config(tmp_path / name, SMALL), cache, tmp_path / f"out-{name}") for name in ("a", "b")]
    results = [(b.communicate(timeout=900)[0], b.wait()) for b in builds]
    for output, returncode in results:
        assert returncode == 0, output
        assert "Could not get lock" not in output
    for name in ("a", "b"):
        assert (tmp_path / f"out-{name}/image/usr/bin/apt-get").exists()
    assert not (cache / "debian/archives/lock").exists()
