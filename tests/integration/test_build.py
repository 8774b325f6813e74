"""Real builds of Debian images through the CLI: outputs, the package cache, failures and interruptions."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import MINIMAL, imagebuild, write_config

pytestmark = pytest.mark.integration


def test_build_minimal_example(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # --no-install-cache: the per-user install cache may hold this tree from an earlier run.
    result = imagebuild("-C", str(MINIMAL), f"--output-dir={out}", "--no-install-cache", "build")
    assert result.returncode == 0, result.stderr
    tree = out / "minimal"
    assert (tree / "usr/lib/systemd/systemd").exists()
    assert (tree / "usr/sbin/sshd").exists()
    assert (tree / "etc/hostname").read_text() == "minimal\n"
    assert (tree / "etc/imagebuild-example").read_text() == (MINIMAL / "mkosi.extra/etc/imagebuild-example").read_text()
    # Each step is logged with its duration.
    assert "install the distribution and packages took" in result.stderr
    # Without -f an existing output is not replaced.
    again = imagebuild("-C", str(MINIMAL), f"--output-dir={out}", "build")
    assert again.returncode != 0 and "-f" in again.stderr and "Traceback" not in again.stderr


METADATA = ("InRelease", "Release", "Packages", "Translation", "Sources", "Contents", "diff/Index")


def test_second_build_downloads_no_package(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["-C", str(MINIMAL), f"--package-cache-dir={cache}", f"--output-dir={tmp_path}/out", "--debug"]
    first = imagebuild(*args, "build")
    assert first.returncode == 0, first.stderr
    assert any(cache.glob("debian/archives/systemd_*.deb"))
    assert any(" systemd " in line for line in first.stderr.splitlines() if "Get:" in line)
    second = imagebuild(*args, "-f", "build")
    assert second.returncode == 0, second.stderr
    downloads = [line for line in second.stderr.splitlines()
                 if line.strip().startswith("Get:") and not any(m in line for m in METADATA)]
    assert downloads == []


def test_missing_package_is_a_clear_error_and_leaves_no_output(tmp_path: Path) -> None:
    conf = write_config(
        tmp_path / "conf",
        "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=directory\n"
        "[Content]\nPackages=systemd\n         no-such-package-imagebuild\n",
    )
    out = tmp_path / "out"
    result = imagebuild("-C", str(conf), f"--output-dir={out}", "build")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "no-such-package-imagebuild" in result.stderr and "Packages=" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_interrupted_build_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    workspaces = tmp_path / "ws"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagebuild", "-C", str(MINIMAL), f"--output-dir={out}",
         f"--workspace-dir={workspaces}", "--no-install-cache", "build"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    # Wait until the distribution install is under way, then kill the build as a user's Ctrl-C or CI would.
    assert proc.stdout is not None
    for line in proc.stdout:
        if "install the distribution" in line:
            break
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(60) == 130, rest
    assert "Traceback" not in rest
    assert not out.exists() or list(out.iterdir()) == []
    assert list(workspaces.iterdir()) == []
    # No part of the build goes on behind our back.
    leftovers = subprocess.run(["pgrep", "-af", f"mmdebstrap.*{workspaces}"], capture_output=True, text=True)
    assert leftovers.stdout == ""
