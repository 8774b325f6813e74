"""examples/disk plus openssh-server, built once per machine through pytest-mkosi's image cache.

The copy lives in a fixed place with a key made once by `imagebuild genkey`, so that its inputs (and
so the cache key) stay the same across sessions; the example's files are refreshed on every call.
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


def disk_ssh_image() -> BuiltImage:
    copy = user_cache_home() / "pytest-mkosi" / "test-configs" / "disk-ssh"
    copy.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{copy}.lock"):
        for name in ("mkosi.conf", "mkosi.repart"):
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
        _, images = load(["-C", str(copy), "--package=openssh-server", "build"])
        return ImageCache().get(images[-1])


if __name__ == "__main__":
    image = disk_ssh_image()
    print(image.path, "reused" if image.reused else f"built in {image.build_seconds:.0f}s")
