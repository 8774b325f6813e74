#!/usr/bin/env python3
"""Where a qemu boot's seconds go: host-side phases and the guest's own timeline, for the images of
benchmarks/machines.py (qemu direct: Format=directory by direct kernel boot; qemu uefi: examples/disk with
OVMF, Secure Boot, systemd-boot, a UKI).

    python3 benchmarks/boot_timeline.py [--qemu direct,uefi] [--runs N] [--blame N]   (as root)

Per boot it prints: start -> SSH-ready on the host; the guest's uptime when SSH answered (host minus guest
is qemu's start, the firmware and the boot loader before the kernel's clock starts); `systemd-analyze`
(firmware/loader/kernel/initrd/userspace when the boot loader reports them); when the guest announced
readiness (the SSH unit's start, monotonic) and when the system was up (`systemctl is-system-running
--wait`); the critical chain of the SSH unit; the slowest units; the console's size (every byte of it goes
through an emulated 115200 baud UART). The host is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imagebuild.launch.guest_ssh import SSH_SERIAL_UNIT  # noqa: E402
from pytest_mkosi.machine import Machine  # noqa: E402
from pytest_mkosi.machine.state import unique_machine_name  # noqa: E402
from pytest_mkosi.runners import create_runner  # noqa: E402
from tests.integration.ssh_images import direct_ssh_image, disk_ssh_image  # noqa: E402

IMAGES = {"direct": direct_ssh_image, "uefi": disk_ssh_image}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def monotonic_seconds(machine: Machine, unit: str, prop: str) -> float:
    value = machine.succeed(f"systemctl show -P {prop} {unit}").strip()
    return int(value) / 1e6 if value.isdigit() else float("nan")


def one_boot(label: str, blame: int) -> None:
    image = IMAGES[label]()
    runner = create_runner("qemu", image.config, image.path, name=unique_machine_name("timeline"))
    before = load()
    try:
        started = time.monotonic()
        runner.start(timeout=runner.boot_timeout)
        ready = time.monotonic() - started
        machine = Machine(runner)
        uptime = float(machine.succeed("cut -d' ' -f1 /proc/uptime"))
        ssh_seconds = time.monotonic() - started
        state = machine.run("systemctl is-system-running --wait").stdout.strip()
        up = time.monotonic() - started
        print(f"== {label}: load before {before}; {getattr(runner, 'accelerator_note', '')}")
        print(f"host: start -> SSH-ready {ready:.2f} s; guest uptime at the first command {uptime:.2f} s "
              f"(asked {ssh_seconds:.2f} s after start: ~{ssh_seconds - uptime:.2f} s before the kernel's clock)")
        print(f"host: start -> is-system-running ({state}) {up:.2f} s")
        print(machine.run("systemd-analyze").stdout.strip())
        active = monotonic_seconds(machine, SSH_SERIAL_UNIT, "ExecMainStartTimestampMonotonic")
        print(f"guest: {SSH_SERIAL_UNIT} main process started at {active:.2f} s (monotonic)")
        print(machine.run(f"systemd-analyze critical-chain --no-pager {SSH_SERIAL_UNIT}").stdout.strip())
        print(machine.run(f"systemd-analyze blame --no-pager | head -n {blame}").stdout.rstrip())
        print(machine.run("journalctl -b -o short-monotonic --no-pager | grep -E "
                          "'Switching root|Reached target (Initrd|Local|Sysinit|Basic|Multi)|Startup finished' "
                          "|| true").stdout.rstrip())
        print(machine.run("systemctl list-units --failed --no-legend --plain || true").stdout.rstrip())
        console = runner.console_log_path
        print(f"console: {console.stat().st_size} bytes, {len(console.read_bytes().splitlines())} lines; "
              f"kernel command line: {machine.succeed('cat /proc/cmdline').strip()}")
    finally:
        runner.stop()
    print(f"load after {load()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--qemu", default="direct,uefi", help="images: direct, uefi")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--blame", type=int, default=25, help="how many of the slowest units to print")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("booting machines needs root", file=sys.stderr)
        return 1
    print(f"load average at start: {load()} on {os.cpu_count()} cores", flush=True)
    for label in args.qemu.split(","):
        for _ in range(args.runs):
            one_boot(label, args.blame)
    return 0


if __name__ == "__main__":
    sys.exit(main())
