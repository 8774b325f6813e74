#!/usr/bin/env python3
"""Figures for the qemu runner (the machines issue): start -> SSH-ready, and the round trip of `true`.

Two images, each booted RUNS times with pytest_mkosi.runners.qemu.QemuRunner (KVM where a probe boot
works, TCG otherwise; SSH over vsock where /dev/vhost-vsock exists, else virtio-serial):
- direct: tests/integration/qemu_image + openssh-server, Format=directory, direct kernel boot (no firmware,
  no boot loader; the tree becomes an ext4 disk for each boot);
- uefi: examples/disk + openssh-server, OVMF with Secure Boot, systemd-boot, a UKI, dm-verity, swtpm.
For each boot: seconds from start() to the first SSH session (readiness event + handshake), and of that
the part before qemu started (overlay or ext4 copy, swtpm); then the median of ROUND_TRIPS runs of
`true` over the open connection. The host's load average is printed too: on a shared 2-core machine
the boot times depend on it. Needs root and the tools tree (ToolsTree=default).

    python3 benchmarks/machines_qemu.py [direct|uefi ...] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imagebuild.pipeline.subbuilds import tools_tree_for  # noqa: E402
from pytest_mkosi.images import BuiltImage  # noqa: E402
from pytest_mkosi.runners.qemu import QemuRunner  # noqa: E402
from tests.integration.ssh_images import direct_ssh_image, disk_ssh_image  # noqa: E402

ROUND_TRIPS = 50
IMAGES: dict[str, Callable[[], BuiltImage]] = {"direct": direct_ssh_image, "uefi": disk_ssh_image}


def qemu_started_after(runner: QemuRunner, started_wall: float) -> float | None:
    """Seconds from start() to qemu's start (the mtime of its argv file, written just before)."""
    try:
        return (runner.state_dir / "qemu.argv").stat().st_mtime - started_wall
    except OSError:
        return None


def boot_once(label: str, image: BuiltImage) -> tuple[float, float]:
    runner = QemuRunner(image.config, image.path, name=f"bench-{label}-{os.getpid()}",
                        tools_tree=tools_tree_for(image.config), stop_grace=0)
    load = os.getloadavg()[0]
    started_wall = time.time()
    try:
        runner.start(timeout=900)
        prepare = qemu_started_after(runner, started_wall)
        ready = runner.ready_seconds or 0.0
        connection = runner.connection()
        times = []
        for _ in range(ROUND_TRIPS):
            t = time.monotonic()
            result = connection.run("true")
            times.append(time.monotonic() - t)
            assert result.returncode == 0
        median = statistics.median(times)
        print(f"{label}: start -> SSH ready {ready:.1f} s (before qemu: {prepare or 0:.1f} s); "
              f"`true` median {median * 1000:.0f} ms over {ROUND_TRIPS}; transport {runner.transport}; "
              f"load average at start {load:.1f}", flush=True)
        print(f"  {runner.accelerator_note}", flush=True)
        return ready, median
    finally:
        runner.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("images", nargs="*", default=list(IMAGES), choices=list(IMAGES))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("booting images needs root")
    for label in args.images:
        image = IMAGES[label]()
        print(f"{label}: image {image.path} ({'cached' if image.reused else f'built in {image.build_seconds:.0f} s'})",
              flush=True)
        results = [boot_once(label, image) for _ in range(args.runs)]
        if len(results) > 1:
            print(f"{label}: median of {len(results)} boots: start -> SSH ready "
                  f"{statistics.median(r[0] for r in results):.1f} s", flush=True)


if __name__ == "__main__":
    main()
