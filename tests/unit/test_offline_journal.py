"""imagebuild journalctl / coredumpctl: the host's tool on the built output, as mkosi runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.errors import ImageBuildError
from imagebuild.verbs import offline_journal
from imagebuild.verbs.offline_journal import offline_command


def config(tmp_path: Path, image_format: str, extra: str = "") -> Config:
    (tmp_path / "mkosi.conf").write_text(
        f"[Distribution]\nDistribution=debian\n[Output]\nFormat={image_format}\nOutputDirectory={tmp_path}/out\n"
        f"ImageId=img\n{extra}")
    _, images = load(["-C", str(tmp_path), "summary"])
    return images[-1]


@pytest.fixture(autouse=True)
def tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline_journal, "find_tool", lambda name, package: f"/usr/bin/{name}")


def test_directory_images_are_read_with_root(tmp_path: Path) -> None:
    cfg = config(tmp_path, "directory")
    (tmp_path / "out" / cfg.output).mkdir(parents=True)
    assert offline_command("journalctl", cfg, ["-b", "-u", "ssh.service"]) == [
        "/usr/bin/journalctl", f"--root={tmp_path}/out/{cfg.output}", "-b", "-u", "ssh.service"]


def test_disk_images_are_read_with_image(tmp_path: Path) -> None:
    cfg = config(tmp_path, "disk")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / cfg.output).write_bytes(b"")
    assert offline_command("coredumpctl", cfg, ["list"]) == [
        "/usr/bin/coredumpctl", f"--image={tmp_path}/out/{cfg.output}", "list"]


def test_unbuilt_and_unreadable_outputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="has not been built yet: run 'imagebuild build' first"):
        offline_command("journalctl", config(tmp_path, "directory"), [])
    with pytest.raises(ImageBuildError, match="reads Format=directory or Format=disk images, not Format=tar"):
        offline_command("journalctl", config(tmp_path, "tar"), [])
    with pytest.raises(ImageBuildError, match="cannot read a compressed image"):
        offline_command("journalctl", config(tmp_path, "disk", "CompressOutput=zstd\n"), [])
