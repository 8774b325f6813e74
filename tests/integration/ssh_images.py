"""Images with sshd for the qemu runner, built once per machine through pytest-mkosi's image cache.

disk_ssh_image: examples/disk (OVMF, Secure Boot, verity) plus openssh-server. Its copy lives in a fixed
place with a key made once by `imagebuild genkey`, so that its inputs (and so the cache key) stay the same
across sessions; the example's files are refreshed on every call.
direct_ssh_image: tests/integration/qemu_image plus openssh-server (Format=directory, direct kernel boot).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from imagebuild.config import load
from imagebuild.paths import user_cache_home
from pytest_mkosi.images import BuiltImage, ImageCache

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "examples" / "disk"
# A trixie tree with a kernel and a small initrd, booted directly (no firmware, no boot loader).
DIRECT_BOOT_CONFIG = ROOT / "tests" / "integration" / "qemu_image"


def disk_ssh_copy(cache_home: Path | None = None) -> Path:
    """The stable copy of examples/disk (build it with --package=openssh-server), in `cache_home` (default:
    this user's cache directory)."""
    copy = (cache_home or user_cache_home()) / "pytest-mkosi" / "test-configs" / "disk-ssh"
    copy.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{copy}.lock"):
        for name in ("mkosi.conf", "mkosi.repart", "mkosi.extra"):
            target = copy / name
            if target.is_dir():
                shutil.rmtree(target)
            # Plain files only (no image trees): copytree is safe here.
            if (EXAMPLE / name).is_dir():
                shutil.copytree(EXAMPLE / name, target)
            else:
                copy.mkdir(exist_ok=True)
                shutil.copyfile(EXAMPLE / name, target)
        if not (copy / "mkosi.key").exists():
            subprocess.run([sys.executable, "-m", "imagebuild", "-C", str(copy), "genkey"], check=True,
                           capture_output=True)
    return copy


def disk_ssh_image() -> BuiltImage:
    _, images = load(["-C", str(disk_ssh_copy()), "--package=openssh-server", "build"])
    return ImageCache().get(images[-1])


def direct_ssh_image() -> BuiltImage:
    """tests/integration/qemu_image plus openssh-server: Format=directory, direct kernel boot."""
    _, images = load(["-C", str(DIRECT_BOOT_CONFIG), "--package=openssh-server", "build"])
    return ImageCache().get(images[-1])


if __name__ == "__main__":
    for make in (disk_ssh_image, direct_ssh_image):
        image = make()
        print(image.path, "reused" if image.reused else f"built in {image.build_seconds:.0f}s")
