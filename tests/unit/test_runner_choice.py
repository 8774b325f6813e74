"""--mkosi-runner: auto picks by Format=, impossible requests are usage errors; nspawn's isolation flags."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.errors import RunError
from imagebuild.launch.nspawn import NspawnOptions, nspawn_command
from pytest_mkosi.runners import RunnerChoiceError, choose_runner, create_runner


def config(tmp_path: Path, image_format: str) -> Config:
    (tmp_path / "mkosi.conf").write_text(f"[Distribution]\nDistribution=debian\n[Output]\nFormat={image_format}\n")
    _, images = load(["-C", str(tmp_path), "summary"])
    return images[-1]


@pytest.mark.parametrize(("image_format", "runner"), [
    ("directory", "nspawn"), ("disk", "qemu"), ("uki", "qemu"), ("esp", "qemu"),
])
def test_auto_picks_by_format(tmp_path: Path, image_format: str, runner: str) -> None:
    assert choose_runner("auto", config(tmp_path, image_format)) == runner


def test_nspawn_for_a_disk_image_is_an_error_that_says_what_to_use(tmp_path: Path) -> None:
    with pytest.raises(RunnerChoiceError, match=r"not Format=disk.*--mkosi-runner=qemu"):
        choose_runner("nspawn", config(tmp_path, "disk"))


def test_formats_that_do_not_boot(tmp_path: Path) -> None:
    with pytest.raises(RunnerChoiceError, match="Format=tar images do not boot"):
        choose_runner("auto", config(tmp_path, "tar"))


def test_qemu_runner_missing_is_not_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest_mkosi.runners.qemu", None)  # as if the module did not exist
    with pytest.raises(RunError, match="qemu runner is not available"):
        create_runner("qemu", config(tmp_path, "disk"), tmp_path / "image.raw", name="x")


def test_nspawn_machines_get_a_private_network_and_an_overlay(tmp_path: Path) -> None:
    cfg = config(tmp_path, "directory")
    argv = nspawn_command(cfg, Path("/images/a:b"), NspawnOptions(overlay_upper=Path("/state/up"),
                                                                 private_network=True))
    assert "--private-network" in argv and "--network-veth" not in argv
    assert "--overlay=/images/a\\:b:/state/up:/" in argv
    assert not [a for a in argv if a.startswith("--volatile")]
    veth = nspawn_command(cfg, Path("/i"), NspawnOptions(network_veth=True))
    assert "--private-network" in veth and "--network-veth" in veth
