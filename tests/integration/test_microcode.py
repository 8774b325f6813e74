"""The microcode initrd (MicrocodeHost=) in real bootable Debian builds, read back with cpio.

The image's firmware directories hold files named as Debian's amd64-microcode and intel-microcode name
them (their content is a marker, not real microcode; the early loader's format is the kernel's business).
The build with MicrocodeHost=no puts all of it first among the boot entry's initrds; the one with
MicrocodeHost=yes only the file of this host's CPU. The second build is a warm one (install cache).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imagebuild.boot.microcode import AMD, INTEL, host_cpu, microcode_file
from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

CONF = """\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format=directory
ImageId=ucode

[Content]
Packages=systemd
         udev
         linux-image-amd64
         systemd-boot-efi
Bootable=yes
UnifiedKernelImages=no
ExtraTrees=firmware
MicrocodeHost={host}

[Host]
ToolsTree=default
"""

FIRMWARE = {
    "usr/lib/firmware/amd-ucode/microcode_amd.bin": b"AMD-OLD\n",
    "usr/lib/firmware/amd-ucode/microcode_amd_fam17h.bin": b"AMD-17\n",
    "usr/lib/firmware/amd-ucode/microcode_amd_fam19h.bin": b"AMD-19\n",
    "usr/lib/firmware/intel-ucode/06-8f-08": b"INTEL-06-8f-08\n",
    "usr/lib/firmware/intel-ucode/06-55-07": b"INTEL-06-55-07\n",
}


def cpio_files(archive: Path, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / "unpacked"
    out.mkdir()
    with archive.open("rb") as data:
        subprocess.run(["cpio", "--extract", "--make-directories", "--quiet"], stdin=data, cwd=out, check=True)
    return {os.fspath(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def build(directory: Path, host: str) -> Path:
    project = write_config(directory / "project", CONF.format(host=host))
    for name, content in FIRMWARE.items():
        path = project / "firmware" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    result = imagebuild("-C", str(project), f"--output-dir={directory}/out", "build", timeout=1200)
    assert result.returncode == 0, result.stderr
    entries = sorted((directory / "out/ucode/efi/ucode").glob("*/initrd0"))
    assert entries, result.stderr
    return entries[0]


def test_all_microcode_comes_first(tmp_path: Path) -> None:
    first = build(tmp_path, "no")
    files = cpio_files(first, tmp_path)
    amd = b"".join(c for n, c in sorted(FIRMWARE.items()) if "amd-ucode" in n)
    intel = b"".join(c for n, c in sorted(FIRMWARE.items()) if "intel-ucode" in n)
    assert files == {f"kernel/x86/microcode/{AMD}.bin": amd, f"kernel/x86/microcode/{INTEL}.bin": intel}
    # The default initrd follows it, and the kernel modules initrd.
    assert (first.parent / "initrd1").stat().st_size > 1 << 20
    assert (first.parent / "initrd2").exists()


def test_only_the_host_cpus_microcode(tmp_path: Path) -> None:
    cpu = host_cpu()
    if cpu is None or cpu.vendor not in (AMD, INTEL):
        pytest.skip("this host's CPU is neither AMD's nor Intel's")
    root = tmp_path / "expected"
    for name, content in FIRMWARE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    expected = microcode_file(root, cpu)
    if expected is None:
        pytest.skip(f"no test firmware file for this host's CPU {cpu}")
    files = cpio_files(build(tmp_path, "yes"), tmp_path)
    assert files == {f"kernel/x86/microcode/{cpu.vendor}.bin": expected.read_bytes()}
