#!/usr/bin/env python3
"""Figures of the machines issue, nspawn and qemu side by side in one run: start to SSH-ready, the median
round trip of `true`, four nspawn machines started at once, and (the fresh-machines issue) the median time
of restoring a saved machine to SSH-ready.

    python3 benchmarks/machines.py [--qemu direct,uefi | --qemu none] [--runs N] [--restores N]   (as root)

Every machine is made the way the plugin makes it (pytest_mkosi.runners.create_runner, then
Machine.run), from images in the plugin's image cache (built first when missing):
- nspawn: examples/minimal (Format=directory in a container, SSH on an AF_UNIX socket);
- qemu direct: tests/integration/qemu_image + openssh-server, Format=directory booted with its kernel
  directly (no firmware, no boot loader), from an overlay of its cached ext4 file system (direct-virtiofs:
  the same tree shared over virtiofs instead);
- qemu uefi: examples/disk + openssh-server, OVMF with Secure Boot, systemd-boot, a UKI, dm-verity, swtpm.
qemu uses KVM where a probe boot works, TCG otherwise (this host: TCG; the note says why), and vsock where
/dev/vhost-vsock exists, else virtio-serial. Goals on the project's 2-core host: nspawn ready <= 1 s, `true`
<= 3 ms, qemu under TCG (direct kernel boot) ready <= 15 s, four nspawn machines all ready <= 3 s, restore to
SSH-ready <= 1 s (nspawn and qemu, TCG included). A restore is what a fresh test gets
(pytest_mkosi/fixtures/fresh.py): the machine is saved once after its boot (runner.snapshot()), each round
dirties it (rm -rf /etc/default) and runner.restore() puts it back (nspawn: the saved overlay and a boot;
qemu: QMP snapshot-load, the SSH session saved with the machine replayed on the host, the guest clock set),
checked clean afterwards. The host is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imagebuild.config import Overrides  # noqa: E402
from pytest_mkosi.fixtures.fresh import Restorable  # noqa: E402
from pytest_mkosi.images import BuiltImage, ImageCache, resolve_configs  # noqa: E402
from pytest_mkosi.machine import Machine  # noqa: E402
from pytest_mkosi.machine.runner import Runner  # noqa: E402
from pytest_mkosi.machine.state import unique_machine_name  # noqa: E402
from pytest_mkosi.runners import create_runner  # noqa: E402
from pytest_mkosi.runners.snapshot import SnapshotError  # noqa: E402
from tests.integration.ssh_images import direct_ssh_image, disk_ssh_image  # noqa: E402

ROUND_TRIPS = 50
SIDE_BY_SIDE = 4
RESTORES = 5


def minimal_image() -> BuiltImage:
    return ImageCache().get(resolve_configs(ROOT / "examples" / "minimal", Overrides())[-1])


# label -> (runner kind, image)
MACHINES: dict[str, tuple[str, Callable[[], BuiltImage]]] = {
    "nspawn": ("nspawn", minimal_image),
    "qemu direct": ("qemu", direct_ssh_image),
    # The same tree shared over virtiofs instead of booted from its cached ext4 (pytest_mkosi.root_disks).
    "qemu direct-virtiofs": ("qemu-virtiofs", direct_ssh_image),
    "qemu uefi": ("qemu", disk_ssh_image),
}


@dataclass
class Figures:
    label: str
    ready: list[float]
    round_trip: float
    note: str
    load: str
    restores: list[float]
    restore_load: str


def restores(machine: Machine, count: int) -> list[float]:
    """Save the booted machine once, then `count` times: dirty it, restore it, check it is clean."""
    runner = machine.runner
    assert isinstance(runner, Restorable), f"the {runner.kind} runner cannot save and restore machines"
    runner.snapshot()
    seconds = []
    for _ in range(count):
        # Not /etc/ssh: a container that has just booted may still be writing its host keys there.
        machine.succeed("rm -rf /etc/os-release /etc/default; touch /root/dirty")
        seconds.append(runner.restore())
        machine.succeed("test -e /etc/os-release && test -d /etc/default && ! test -e /root/dirty")
    return seconds


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def new_runner(kind: str, image: BuiltImage) -> Runner:
    runner = create_runner(kind.removesuffix("-virtiofs"), image.config, image.path,
                           name=unique_machine_name("bench"))
    if kind.endswith("-virtiofs"):
        runner.root_disk = None  # type: ignore[attr-defined]  # QemuRunner: share the tree over virtiofs
    return runner


def measure(label: str, runs: int, restore_count: int) -> Figures:
    kind, make_image = MACHINES[label]
    image = make_image()
    print(f"{label}: image {image.path} ({'cached' if image.reused else f'built in {image.build_seconds:.0f} s'})",
          flush=True)
    ready: list[float] = []
    rtts: list[float] = []
    restored: list[float] = []
    note = ""
    at_start = load()
    restore_load = ""
    for run in range(runs):
        runner = new_runner(kind, image)
        try:
            started = time.monotonic()
            runner.start(timeout=runner.boot_timeout)
            ready.append(time.monotonic() - started)
            machine = Machine(runner)
            machine.run("true")  # the first command also asks which login shell the guest has
            for _ in range(ROUND_TRIPS):
                t = time.perf_counter()
                machine.run("true")
                rtts.append(time.perf_counter() - t)
            note = getattr(runner, "accelerator_note", "") or "container"
            if run == 0 and restore_count:
                restore_load = load()
                try:
                    restored = restores(machine, restore_count)
                    print(f"  {label}: restores to SSH-ready {', '.join(f'{s:.2f}' for s in restored)} s", flush=True)
                except SnapshotError as e:
                    restore_load = f"n/a: {e}"
        finally:
            runner.stop()
        stalled = f" ({runner.stalled_boots} stalled boot(s) cut and booted again)" if runner.stalled_boots else ""
        print(f"  {label}: ready after {ready[-1]:.2f} s{stalled}", flush=True)
    return Figures(label, ready, statistics.median(rtts), note, at_start, restored, restore_load)


def side_by_side() -> tuple[float, set[str]]:
    image = minimal_image()
    runners: list[Runner] = []
    errors: list[BaseException] = []
    try:
        runners = [new_runner("nspawn", image) for _ in range(SIDE_BY_SIDE)]

        def boot(runner: Runner) -> None:
            try:
                runner.start(timeout=runner.boot_timeout)
            except BaseException as e:
                errors.append(e)

        started = time.monotonic()
        threads = [threading.Thread(target=boot, args=(r,)) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        all_ready = time.monotonic() - started
        if errors:
            raise errors[0]
        states = {Machine(r).run("systemctl is-system-running --wait").stdout.strip() for r in runners}
    finally:
        for runner in runners:
            runner.stop()
    return all_ready, states


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--qemu", default="direct,direct-virtiofs,uefi",
                        help="qemu images to boot: direct, direct-virtiofs, uefi, or none")
    parser.add_argument("--runs", type=int, default=1, help="boots per machine (the median is printed)")
    parser.add_argument("--restores", type=int, default=RESTORES,
                        help="restores of each machine after its first boot (the median is printed; 0: none)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("booting machines needs root", file=sys.stderr)
        return 1
    labels = ["nspawn"] + [f"qemu {name}" for name in args.qemu.split(",") if name and name != "none"]
    unknown = [label for label in labels if label not in MACHINES]
    if unknown:
        parser.error(f"unknown qemu image {unknown[0]!r}: use direct, direct-virtiofs, uefi or none")
    print(f"load average at start: {load()} on {os.cpu_count()} cores", flush=True)
    figures = [measure(label, args.runs, args.restores) for label in labels]
    all_ready, states = side_by_side()

    width = max(len(f.label) for f in figures) + 2
    print()
    print(f"{'':{width}}{'start -> SSH ready':>20}{f'`true` median ({ROUND_TRIPS})':>22}   load at start   how")
    for f in figures:
        print(f"{f.label:{width}}{statistics.median(f.ready):>18.2f} s{f.round_trip * 1000:>19.2f} ms   "
              f"{f.load:<15} {f.note}")
    print("goals: nspawn ready <= 1 s, `true` <= 3 ms; qemu direct under TCG ready <= 15 s")
    if args.restores:
        print()
        print(f"{'':{width}}{f'restore -> SSH ready (median of {args.restores})':>36}   min / max   load before")
        for f in figures:
            if not f.restores:
                print(f"{f.label:{width}}{'-':>36}   {f.restore_load}")
                continue
            print(f"{f.label:{width}}{statistics.median(f.restores):>34.2f} s   {min(f.restores):.2f} / "
                  f"{max(f.restores):.2f}   {f.restore_load}")
        print("goal: restore -> SSH ready <= 1 s (nspawn and qemu)")
    print(f"{SIDE_BY_SIDE} nspawn machines at once, all ready: {all_ready:.2f} s (goal <= 3 s); their systems: "
          f"{', '.join(sorted(states))}; load {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
