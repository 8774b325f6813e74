"""verbs/vmspawn.py: the systemd-vmspawn command line from the settings, and what is refused before building."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.errors import RunError
from imagebuild.verbs import vmspawn


def _config(tmp_path: Path, *args: str) -> Config:
    tmp_path.mkdir(parents=True, exist_ok=True)
    _, images = load(["-C", str(tmp_path), "-d", "debian", "-r", "trixie", *args, "vmspawn"])
    return images[-1]


def test_command_line_from_the_settings(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir(parents=True)
    config = _config(tmp_path, "-t", "disk", "--qemu-smp=2", "--qemu-mem=1G", "--qemu-kvm=no", "--qemu-swtpm=yes",
                     "--runtime-network=user", "--credential=a=b", f"--runtime-tree={tmp_path / 'src'}",
                     "--kernel-command-line-extra=quiet")
    argv = vmspawn.vmspawn_argv(config, "/usr/bin/systemd-vmspawn", ["--forward-journal=x"])
    assert argv[:13] == ["/usr/bin/systemd-vmspawn", "--cpus", "2", "--ram", "1G", "--kvm", "no", "--vsock", "auto",
                         "--tpm", "yes", "--secure-boot", "no"]
    assert "--network-user-mode" in argv and "--set-credential=a:b" in argv
    assert argv[argv.index("--bind") + 1] == f"{tmp_path / 'src'}:/root/src/src"
    assert argv[argv.index("--image") + 1].endswith("/mkosi.output/image.raw")
    assert argv[-2:] == ["--forward-journal=x", "quiet"]


def test_a_directory_image_is_booted_as_a_directory(tmp_path: Path) -> None:
    argv = vmspawn.vmspawn_argv(_config(tmp_path, "-t", "directory"), "systemd-vmspawn", [])
    assert argv[argv.index("--directory") + 1].endswith("/mkosi.output/image")


@pytest.mark.parametrize(("args", "message"), [
    (("-t", "tar"), "cannot boot Format=tar"),
    (("-t", "disk", "--qemu-firmware=bios"), "BIOS"),
    (("-t", "disk", "--qemu-cdrom=yes"), "CD-ROM"),
    (("-t", "disk", "--ephemeral=yes"), "Ephemeral="),
])
def test_what_vmspawn_cannot_boot_is_refused(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=message):
        vmspawn.check_bootable(_config(tmp_path, *args))


def test_a_tree_without_systemd_vmspawn_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    with pytest.raises(RunError, match=r"has none .*Debian trixie's systemd 257.*qemu verb"):
        vmspawn.find_vmspawn(tmp_path)


def test_an_old_systemd_vmspawn_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "bin/systemd-vmspawn"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\necho 'systemd 255 (255.4-1)'\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{program.parent}:{os.environ['PATH']}")
    assert subprocess.run([str(program), "--version"], capture_output=True, text=True).stdout.startswith("systemd 255")
    with pytest.raises(RunError, match="is systemd 255; the vmspawn verb needs systemd 256"):
        vmspawn.find_vmspawn(None)
