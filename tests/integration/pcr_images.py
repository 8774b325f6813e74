"""A second examples/disk image that differs from disk_ssh_image only in its kernel command line: its UKI's
PCR 11 prediction is what a machine booted from the first one must NOT match."""

from __future__ import annotations

from imagebuild.config import load
from pytest_mkosi.images import BuiltImage, ImageCache
from tests.integration.ssh_images import disk_ssh_image

EXTRA_WORD = "pytest-mkosi.pcr-variant=1"


def disk_cmdline_variant_image() -> BuiltImage:
    base = disk_ssh_image()
    _, images = load(["-C", str(base.config.directory), "--package=openssh-server",
                      f"--kernel-command-line={EXTRA_WORD}", "build"])
    return ImageCache().get(images[-1])


if __name__ == "__main__":
    image = disk_cmdline_variant_image()
    print(image.path, image.config.kernel_command_line,
          "reused" if image.reused else f"built in {image.build_seconds:.0f}s")
