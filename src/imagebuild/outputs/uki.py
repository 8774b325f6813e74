"""Format=uki: one unified kernel image whose initrd is the whole image (a cpio of the root).

The image's newest kernel, KernelCommandLine=, its os-release and, with SecureBoot=, the signature; the
root becomes the initramfs, so the kernel runs its /init (systemd) as in an initrd.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot.kernel import find_kernels
from imagebuild.boot.microcode import build_microcode_initrd
from imagebuild.boot.uki import UkiRequest, build_uki, image_stub, os_release, want_signed_pcrs
from imagebuild.errors import BuildError
from imagebuild.outputs.archive import make_cpio
from imagebuild.outputs.compress import compress
from imagebuild.outputs.naming import uncompressed_name

if TYPE_CHECKING:
    from imagebuild.context import Context


def produce(context: Context) -> list[Path]:
    config = context.config
    root = context.root
    kernels = find_kernels(root)
    if not kernels:
        raise BuildError(
            "Format=uki: the image has no kernel (/usr/lib/modules/*/vmlinuz or /boot/vmlinuz-*): add one to "
            "Packages= (linux-image-amd64 on Debian)"
        )
    init = root / "init"
    if not (init.exists() or init.is_symlink()):
        # The kernel starts /init of an initramfs; systemd is the image's init.
        init.symlink_to("usr/lib/systemd/systemd")
    # CompressOutput= compresses the initrd inside the UKI (the kernel unpacks zstd and xz initrds).
    initrd = compress(make_cpio(root, context.artifacts / "image.cpio"), str(config.compress_output),
                      config.compress_level)
    output = context.staging / uncompressed_name(config)
    microcode = build_microcode_initrd(context)
    request = UkiRequest(
        kernel=kernels[0], initrds=[*([microcode] if microcode else []), initrd, *(Path(p) for p in config.initrds)],
        cmdline=list(config.kernel_command_line), os_release=os_release(root), output=output,
        stub=image_stub(context), sign=config.secure_boot, sign_pcrs=want_signed_pcrs(context),
    )
    build_uki(context, request)
    initrd.unlink()
    return [output]
