"""io_uring for qemu's disk I/O (imagebuild.launch.io_uring): asked for only where the kernel allows it and
the qemu binary links liburing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagebuild.launch import io_uring


def test_a_qemu_without_liburing_is_not_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_it, without = tmp_path / "qemu-with", tmp_path / "qemu-without"
    with_it.write_bytes(b"\x7fELF...libglib-2.0.so.0\0liburing.so.2\0libc.so.6\0")
    without.write_bytes(b"\x7fELF...libglib-2.0.so.0\0libc.so.6\0")
    monkeypatch.setattr(io_uring, "kernel_allows", lambda: True)
    assert io_uring.usable(with_it) and not io_uring.usable(without)
    assert not io_uring.usable(tmp_path / "missing")
    monkeypatch.setattr(io_uring, "kernel_allows", lambda: False)  # e.g. a container's seccomp profile
    assert not io_uring.usable(with_it)


def test_the_kernel_check_leaves_no_ring_open() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        io_uring.kernel_allows.__wrapped__()  # uncached: a ring made and closed each time
    assert len(os.listdir("/proc/self/fd")) == before
