"""A foreign-architecture Debian build is refused before any work when the host lacks what it needs."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from imagebuild.config import load
from imagebuild.errors import BuildError
from imagebuild.installers import apt
from imagebuild.pipeline import pipeline


def arm64_config(tmp_path: Path) -> object:
    (tmp_path / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\nRelease=trixie\nArchitecture=arm64\n")
    _, images = load(["-C", str(tmp_path), f"--workspace-dir={tmp_path}/ws", f"--output-dir={tmp_path}/out", "build"])
    return images[-1]


@pytest.fixture
def amd64_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(apt, "host_dpkg_architecture", lambda variable: "amd64")
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "status").write_text("enabled\n")
    (binfmt / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    monkeypatch.setattr(apt, "BINFMT", binfmt)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/usr/bin/arch-test" if name == "arch-test"
                        else real_which(name, *a, **k))
    return binfmt


def test_missing_arch_test_is_refused_before_any_work(amd64_host: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "arch-test" else "/usr/bin/" + name)
    started = time.monotonic()
    with pytest.raises(BuildError, match=r"Architecture=arm64: .*arch-test.*install the Debian package 'arch-test'"):
        pipeline.build_image(arm64_config(tmp_path))  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    # No workspace was made and nothing was written (the workspace check may probe its parent only).
    assert list((tmp_path / "ws").glob("imagebuild-workspace-*")) == [] and not (tmp_path / "out").exists()


def test_unregistered_emulator_is_refused_before_any_work(amd64_host: Path, tmp_path: Path) -> None:
    (amd64_host / "qemu-aarch64").unlink()
    with pytest.raises(BuildError, match=r"no qemu-user emulator is registered.*qemu-user-static"):
        pipeline.preflight(arm64_config(tmp_path))  # type: ignore[arg-type]


def test_registered_emulator_and_arch_test_pass(amd64_host: Path, tmp_path: Path) -> None:
    apt.check_foreign_architecture("arm64")
    apt.check_foreign_architecture("amd64")  # the host's own needs nothing
