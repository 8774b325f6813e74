"""Finding the kernels installed in an image: /usr/lib/modules/<version>/vmlinuz or /boot/vmlinuz-<version>."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagebuild.config.versions import compare_versions


@dataclass(frozen=True)
class Kernel:
    """One installed kernel: its version (the modules directory's name) and its image file."""

    version: str
    image: Path

    def modules_dir(self, root: Path) -> Path:
        return root / "usr/lib/modules" / self.version


def _kernel_image(root: Path, version: str) -> Path | None:
    # Distributions following the boot loader spec ship the image beside the modules; Debian keeps it
    # in /boot.
    for candidate in (root / "usr/lib/modules" / version / "vmlinuz", root / "boot" / f"vmlinuz-{version}"):
        if candidate.is_file():
            return candidate
    return None


def find_kernels(root: Path) -> list[Kernel]:
    """The kernels of the image, newest first. A modules directory without a kernel image is not one."""
    modules = root / "usr/lib/modules"
    kernels = []
    if modules.is_dir():
        for entry in modules.iterdir():
            image = _kernel_image(root, entry.name) if entry.is_dir() else None
            if image is not None:
                kernels.append(Kernel(entry.name, image))
    ordered: list[Kernel] = []
    for kernel in kernels:
        position = 0
        while position < len(ordered) and compare_versions(ordered[position].version, kernel.version) > 0:
            position += 1
        ordered.insert(position, kernel)
    return ordered
