"""boot/grub.py: what grub-mkimage is asked for, grub.cfg's entries, and the checks, with the process layer faked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from imagebuild.boot import bootloader, grub, uki
from imagebuild.boot.kernel import Kernel
from imagebuild.config import load
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.outputs.repart import Partition, save_partitions_json

VERSION = "6.12.1-amd64"
ROOT_UUID = "1cd78487-2dd9-4b8e-9eb3-c8bd0019bcad"


def _context(tmp_path: Path, *args: str) -> Context:
    directory = tmp_path / "conf"
    directory.mkdir(parents=True)
    _, images = load(["-C", str(directory), "-d", "debian", "-r", "trixie", "-t", "disk", *args, "build"])
    tools = tmp_path / "tools"
    for name in ("usr/bin/grub-mkimage", "usr/lib/grub/i386-pc/grub-bios-setup", "usr/bin/ukify", "usr/bin/sbsign"):
        (tools / name).parent.mkdir(parents=True, exist_ok=True)
        (tools / name).write_text("")
    workspace = tmp_path / "ws"
    (workspace / "artifacts").mkdir(parents=True)
    return Context(images[-1], workspace, tmp_path / "cache", tools)


def _image(context: Context, *targets: str) -> Kernel:
    root = context.root
    (root / "usr/lib/modules" / VERSION).mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "boot" / f"vmlinuz-{VERSION}").write_bytes(b"kernel")
    (root / "usr/lib/os-release").write_text("ID=debian\n")
    for target in targets:
        (root / "usr/lib/grub" / target).mkdir(parents=True)
        (root / "usr/lib/grub" / target / "normal.mod").write_bytes(b"")
        (root / "usr/lib/grub" / target / "boot.img").write_bytes(b"boot")
    (root / "usr/share/grub").mkdir(parents=True)
    (root / "usr/share/grub/unicode.pf2").write_bytes(b"font")
    return Kernel(VERSION, root / "boot" / f"vmlinuz-{VERSION}")


class FakeRun:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, context: Any, argv: Sequence[Any], **kwargs: Any) -> str:
        args = [str(a) for a in argv]
        self.calls.append(args)
        for flag in ("--output",):
            if flag in args:
                Path(args[args.index(flag) + 1]).write_bytes(b"MZ grub")
        for a in args:
            if a.startswith("--output="):
                Path(a[len("--output="):]).write_bytes(b"MZ uki")
        return ""


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    fake = FakeRun()
    monkeypatch.setattr(grub, "run_tool", fake)
    monkeypatch.setattr(uki, "run_tool", fake)
    return fake


def _partitions(context: Context) -> None:
    save_partitions_json(context, [
        Partition("esp", "esp", "0b0e", 1, 1 << 20, 512 << 20, None, None),
        Partition(grub.BIOS_BOOT_PARTITION_TYPE, "", "b105", 2, 513 << 20, 1 << 20, None, None),
        Partition("root-x86-64", "root", ROOT_UUID, 3, 514 << 20, 400 << 20, None, None),
    ])


def test_efi_and_bios_grub_core_images(tmp_path: Path, fake_run: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=grub", "--bios-bootloader=grub")
    _image(context, "x86_64-efi", "i386-pc")
    bootloader.install_bootloader(context)
    efi, bios = fake_run.calls
    assert efi[0] == "/usr/bin/grub-mkimage"
    assert efi[efi.index("--format") + 1] == "x86_64-efi"
    assert efi[efi.index("--output") + 1] == str(context.root / "efi/EFI/BOOT/BOOTX64.EFI")
    assert efi[efi.index("--directory") + 1] == str(context.root / "usr/lib/grub/x86_64-efi")
    assert "--disable-shim-lock" in efi and "chain" in efi and "normal" in efi
    assert bios[bios.index("--format") + 1] == "i386-pc" and "biosdisk" in bios
    assert bios[bios.index("--output") + 1] == str(grub.bios_directory(context) / "core.img")
    early = Path(efi[efi.index("--config") + 1]).read_text()
    assert "search --no-floppy --set=root --file /grub/grub.cfg" in early
    assert (context.root / "efi/grub/grub.cfg").read_text() == "set timeout=0\n"
    assert (context.root / "efi/EFI/debian/grub.cfg").read_text() == "configfile /grub/grub.cfg\n"
    assert (context.root / "efi/grub/fonts/unicode.pf2").read_bytes() == b"font"
    assert grub.state(context) == grub.GrubState(efi=True, bios=True)


def test_a_grub_cfg_the_image_brings_is_kept(tmp_path: Path, fake_run: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=grub")
    _image(context, "x86_64-efi")
    (context.root / "efi/grub").mkdir(parents=True)
    (context.root / "efi/grub/grub.cfg").write_text("set timeout=5\n")
    bootloader.install_bootloader(context)
    assert (context.root / "efi/grub/grub.cfg").read_text() == "set timeout=5\n"


def test_bootable_auto_without_grub_modules_installs_nothing(tmp_path: Path, fake_run: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=grub", "--bios-bootloader=grub")
    _image(context)
    bootloader.install_bootloader(context)
    assert fake_run.calls == []
    assert grub.state(context) == grub.GrubState()


def test_bios_grub_without_its_modules_is_refused_with_advice(tmp_path: Path, fake_run: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=systemd-boot", "--bios-bootloader=grub", "--bootable=yes")
    _image(context, "x86_64-efi")
    with pytest.raises(BuildError, match="grub-pc-bin"):
        grub.install_grub(context)


def test_missing_grub_mkimage_names_the_package(tmp_path: Path, fake_run: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=grub")
    _image(context, "x86_64-efi")
    assert context.tools_tree is not None
    (context.tools_tree / "usr/bin/grub-mkimage").unlink()
    with pytest.raises(BuildError, match="grub-common"):
        bootloader.install_bootloader(context)


def test_grub_cfg_entries_for_the_uki_and_the_type1_entry(tmp_path: Path, fake_run: FakeRun,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path, "--bootloader=grub", "--bios-bootloader=grub", "--kernel-modules-initrd=no",
                       "--kernel-command-line=console=ttyS0")
    _image(context, "x86_64-efi", "i386-pc")
    initrd = tmp_path / "initrd.cpio.zst"
    initrd.write_bytes(b"initrd")
    monkeypatch.setattr(uki, "build_default_initrd", lambda c: initrd)
    bootloader.install_bootloader(context)
    _partitions(context)
    uki.build_unified_kernel_images(context)
    ukify = next(c for c in fake_run.calls if c[1:2] == ["build"])
    # grub sets no LoaderDevicePartUUID: the UKI names its root itself.
    assert f"--cmdline=console=ttyS0 root=PARTUUID={ROOT_UUID}" in ukify
    config = (context.root / "efi/grub/grub.cfg").read_text()
    assert config == (
        "set timeout=0\n"
        'if [ "${grub_platform}" = efi ]; then\n'
        f'menuentry "debian-{VERSION}" {{\n'
        f"    chainloader /EFI/Linux/debian-{VERSION}.efi\n"
        "}\nfi\n"
        'if [ "${grub_platform}" = pc ]; then\n'
        f'menuentry "debian-{VERSION}" {{\n'
        f"    linux /debian/{VERSION}/linux console=ttyS0 root=PARTUUID={ROOT_UUID}\n"
        f"    initrd /debian/{VERSION}/initrd0\n"
        "}\nfi\n"
    )


def test_without_ukis_efi_grub_boots_the_type1_entry_too(tmp_path: Path, fake_run: FakeRun,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path, "--bootloader=grub", "--bios-bootloader=grub", "--unified-kernel-images=no",
                       "--kernel-modules-initrd=no")
    _image(context, "x86_64-efi", "i386-pc")
    monkeypatch.setattr(uki, "build_default_initrd", lambda c: tmp_path / "initrd")
    (tmp_path / "initrd").write_bytes(b"i")
    bootloader.install_bootloader(context)
    uki.build_unified_kernel_images(context)
    config = (context.root / "efi/grub/grub.cfg").read_text()
    assert 'if [ "${grub_platform}" = efi ] || [ "${grub_platform}" = pc ]; then' in config
    assert "chainloader" not in config


def test_bios_setup_fakes_the_root_device_and_needs_a_bios_boot_partition(tmp_path: Path, fake_run: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=none", "--bios-bootloader=grub")
    _image(context, "i386-pc")
    bootloader.install_bootloader(context)
    image = tmp_path / "disk.raw"
    with pytest.raises(BuildError, match="no BIOS boot partition"):
        grub.setup_bios(context, image, ["esp", "root-x86-64"])
    grub.setup_bios(context, image, ["esp", grub.BIOS_BOOT_PARTITION_TYPE.upper(), "root-x86-64"])
    setup = fake_run.calls[-1]
    assert setup[:4] == ["unshare", "--mount", "--propagation=private", "sh"]
    assert setup[-4:] == ["/usr/lib/grub/i386-pc/grub-bios-setup", "--directory", str(grub.bios_directory(context)),
                          str(image)]
    assert (context.workspace / "grub-mountinfo").read_text() == f"1 0 1:1 / / - fat {image}\n"
