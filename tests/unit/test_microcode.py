"""The microcode initrd: which CPU the host has, which file is its microcode, what goes into the cpio."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from imagebuild.boot import microcode
from imagebuild.boot.microcode import AMD, INTEL, Cpu, build_microcode_initrd, microcode_file, parse_cpuinfo
from imagebuild.config import load
from imagebuild.context import Context

CPUINFO = textwrap.dedent("""\
    processor\t: 0
    vendor_id\t: AuthenticAMD
    cpu family\t: 25
    model\t\t: 17
    model name\t: AMD EPYC
    stepping\t: 1

    processor\t: 1
    vendor_id\t: AuthenticAMD
    cpu family\t: 25
    model\t\t: 17
    stepping\t: 1
""")

FIRMWARE = {
    "usr/lib/firmware/amd-ucode/microcode_amd.bin": b"amd-old",
    "usr/lib/firmware/amd-ucode/microcode_amd_fam19h.bin": b"amd-19",
    "usr/lib/firmware/intel-ucode/06-8f-08": b"intel-a",
    "usr/lib/firmware/intel-ucode/06-55-07.initramfs": b"intel-b",
}


def test_cpuinfo_gives_the_first_complete_processor() -> None:
    assert parse_cpuinfo(CPUINFO) == Cpu(AMD, 25, 17, 1)
    assert parse_cpuinfo("processor : 0\nvendor_id : GenuineIntel\n") is None
    assert parse_cpuinfo("vendor_id : GenuineIntel\ncpu family : 6\nmodel : 143\nstepping : 8\n") == \
        Cpu(INTEL, 6, 143, 8)


def make_root(root: Path, files: dict[str, bytes] = FIRMWARE) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


@pytest.mark.parametrize(("cpu", "expected"), [
    (Cpu(AMD, 25, 17, 1), "amd-ucode/microcode_amd_fam19h.bin"),  # one file per family from 0x15 on
    (Cpu(AMD, 16, 2, 3), "amd-ucode/microcode_amd.bin"),  # the older families share one
    (Cpu(AMD, 23, 1, 1), None),  # family 0x17: the image has no file for it
    (Cpu(INTEL, 6, 0x8F, 8), "intel-ucode/06-8f-08"),
    (Cpu(INTEL, 6, 0x55, 7), "intel-ucode/06-55-07.initramfs"),
    (Cpu("HygonGenuine", 24, 0, 1), None),
])
def test_the_microcode_file_of_a_cpu(tmp_path: Path, cpu: Cpu, expected: str | None) -> None:
    root = make_root(tmp_path)
    found = microcode_file(root, cpu)
    assert found == (root / "usr/lib/firmware" / expected if expected else None)


def context_for(tmp_path: Path, conf: str) -> Context:
    project = tmp_path / "project"
    project.mkdir(parents=True)
    (project / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\nArchitecture=x86-64\n" + conf)
    _, images = load(["-C", str(project), "summary"])
    workspace = tmp_path / "workspace"
    (workspace / "artifacts").mkdir(parents=True)
    return Context(images[0], workspace, tmp_path / "cache")


def cpio_contents(archive: Path, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / "unpacked"
    out.mkdir()
    with archive.open("rb") as data:
        subprocess.run(["cpio", "--extract", "--make-directories", "--quiet"], stdin=data, cwd=out, check=True)
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_without_microcode_host_all_of_it_per_vendor(tmp_path: Path) -> None:
    context = context_for(tmp_path, "")
    make_root(context.root)
    initrd = build_microcode_initrd(context)
    assert initrd is not None
    assert cpio_contents(initrd, tmp_path) == {
        "kernel/x86/microcode/AuthenticAMD.bin": b"amd-old" + b"amd-19",
        "kernel/x86/microcode/GenuineIntel.bin": b"intel-b" + b"intel-a",
    }
    # Made once per build: the other kernels' entries share it.
    assert build_microcode_initrd(context) == initrd


def test_microcode_host_takes_only_the_hosts(tmp_path: Path) -> None:
    context = context_for(tmp_path, "[Content]\nMicrocodeHost=yes\n")
    make_root(context.root)
    initrd = build_microcode_initrd(context, Cpu(INTEL, 6, 0x8F, 8))
    assert initrd is not None
    assert cpio_contents(initrd, tmp_path) == {"kernel/x86/microcode/GenuineIntel.bin": b"intel-a"}


def test_microcode_host_reads_proc_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(microcode, "host_cpu", lambda: parse_cpuinfo(CPUINFO))
    context = context_for(tmp_path, "[Content]\nMicrocodeHost=yes\n")
    make_root(context.root)
    initrd = build_microcode_initrd(context)
    assert initrd is not None
    assert cpio_contents(initrd, tmp_path) == {"kernel/x86/microcode/AuthenticAMD.bin": b"amd-19"}


def test_no_microcode_initrd_without_a_match_firmware_or_x86(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    context = context_for(tmp_path / "a", "[Content]\nMicrocodeHost=yes\n")
    make_root(context.root)
    assert build_microcode_initrd(context, Cpu(AMD, 23, 1, 1)) is None
    assert "no microcode in the image for this host's CPU" in caplog.text
    assert not (context.workspace / "microcode-root").exists()
    bare = context_for(tmp_path / "b", "")
    bare.root.mkdir()
    assert build_microcode_initrd(bare) is None
    arm = context_for(tmp_path / "c", "[Distribution]\nArchitecture=arm64\n")
    make_root(arm.root)
    assert build_microcode_initrd(arm) is None


def test_the_microcode_initrd_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagebuild.boot import uki
    from imagebuild.boot.kernel import Kernel

    context = context_for(tmp_path, "[Content]\nKernelModulesInitrd=no\n")
    make_root(context.root)
    initrds = uki.initrds_for(context, Kernel("6.1", Path("vmlinuz")), [tmp_path / "default.cpio"])
    assert initrds == [context.artifacts / "microcode.cpio", tmp_path / "default.cpio"]
