"""AF_VSOCK for qemu guests: whether this host has vhost-vsock, and a context ID no other VM uses."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from imagebuild.config.enums import ConfigFeature
from imagebuild.errors import RunError

if TYPE_CHECKING:
    from imagebuild.config import Config

VHOST_VSOCK = Path("/dev/vhost-vsock")
# _IOW(VHOST_VIRTIO 0xAF, 0x60, __u64): what qemu does with guest-cid=; EADDRINUSE when a VM has it.
VHOST_VSOCK_SET_GUEST_CID = 0x4008AF60
# 0-2 are reserved (hypervisor, local, host); u32 max is VMADDR_CID_ANY.
CID_FIRST, CID_LAST = 3, 0xFFFFFFFE


def vhost_vsock_available() -> bool:
    return os.access(VHOST_VSOCK, os.R_OK | os.W_OK)


def ssh_transport(config: Config) -> Literal["vsock", "virtio-serial"]:
    """QemuVsock=: vsock when asked for or (auto) when /dev/vhost-vsock exists; else virtio-serial."""
    if config.qemu_vsock == ConfigFeature.enabled:
        if not vhost_vsock_available():
            raise RunError("QemuVsock=yes: this host has no /dev/vhost-vsock (modprobe vhost_vsock); "
                           "set QemuVsock=auto to use virtio-serial instead")
        return "vsock"
    if config.qemu_vsock == ConfigFeature.auto and vhost_vsock_available():
        return "vsock"
    return "virtio-serial"


def cid_is_free(cid: int) -> bool:
    """Claim `cid` on a throwaway vhost-vsock handle: the kernel refuses a CID a running VM holds."""
    fd = os.open(VHOST_VSOCK, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, struct.pack("Q", cid))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return False
        raise
    finally:
        os.close(fd)
    return True


def free_cid(attempts: int = 64) -> int:
    """A random CID no running VM uses (another VM may still take it before ours starts: rare, and qemu
    then fails with a clear error)."""
    for _ in range(attempts):
        cid = random.randint(CID_FIRST, CID_LAST)
        if cid_is_free(cid):
            return cid
    raise RunError(f"no free vsock CID found in {attempts} attempts")
