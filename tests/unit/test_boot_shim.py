"""boot/shim.py: where shim and the boot loader behind it go, what is signed, and the checks; processes faked."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from imagebuild.boot import bootloader, grub, secure_boot, shim, uki
from imagebuild.context import Context
from imagebuild.errors import BuildError
from tests.unit.test_boot_grub import VERSION, FakeRun, _context, _image


def pe(sections: dict[str, bytes]) -> bytes:
    """A PE file with nothing but a section table and the sections' raw data."""
    header = bytearray(0x40) + b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, len(sections), 0, 0, 0, 0, 0)
    data_offset = len(header) + 40 * len(sections)
    table, data = b"", b""
    for name, content in sections.items():
        table += name.encode().ljust(8, b"\0") + struct.pack("<IIIIIIHHI", len(content), 0, len(content),
                                                             data_offset + len(data), 0, 0, 0, 0, 0)
        data += content
    struct.pack_into("<I", header, 0x3C, 0x40)
    return bytes(header) + table + data


def _files(context: Context, *paths: str) -> None:
    for path in paths:
        target = context.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.encode())


def _secure_boot(tmp_path: Path) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "key").write_text("key")
    (tmp_path / "key").chmod(0o600)
    (tmp_path / "crt").write_text("crt")
    # No enrollment files: those are real signatures (tests/unit elsewhere check them).
    return ["--secure-boot=yes", "--secure-boot-auto-enroll=no", f"--secure-boot-key={tmp_path / 'key'}",
            f"--secure-boot-certificate={tmp_path / 'crt'}"]


@pytest.fixture
def processes(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    fake = FakeRun()
    monkeypatch.setattr(grub, "run_tool", fake)
    monkeypatch.setattr(uki, "run_tool", fake)
    return fake


@pytest.fixture
def signing(monkeypatch: pytest.MonkeyPatch, processes: FakeRun) -> list[tuple[str, str]]:
    """(source, destination) of every sbsign run; the destination gets the source's bytes."""
    signed: list[tuple[str, str]] = []

    def fake_sign(context: Context, source: Path, destination: Path) -> None:
        signed.append((str(source.relative_to(context.root)), str(destination.relative_to(context.root))))
        destination.write_bytes(source.read_bytes())

    for module in (bootloader, grub, shim, secure_boot):
        monkeypatch.setattr(module, "sign", fake_sign)
    return signed


SYSTEMD_BOOT = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
UNSIGNED = ("usr/lib/shim/shimx64.efi", "usr/lib/shim/mmx64.efi")
SIGNED = ("usr/lib/shim/shimx64.efi.signed", "usr/lib/shim/mmx64.efi.signed")


def test_unsigned_shim_signed_in_front_of_systemd_boot(tmp_path: Path, signing: list[tuple[str, str]]) -> None:
    context = _context(tmp_path, "--shim-bootloader=unsigned", *_secure_boot(tmp_path))
    _image(context)
    _files(context, SYSTEMD_BOOT, *UNSIGNED, *SIGNED)
    bootloader.install_bootloader(context)
    assert signing == [(SYSTEMD_BOOT, "efi/EFI/systemd/systemd-bootx64.efi"),
                       (SYSTEMD_BOOT, "efi/EFI/BOOT/grubx64.EFI"),
                       (UNSIGNED[0], "efi/EFI/BOOT/BOOTX64.EFI"),
                       (UNSIGNED[1], "efi/EFI/BOOT/mmx64.efi")]


def test_signed_shim_and_systemd_boot_are_copied_as_they_are(tmp_path: Path, signing: list[tuple[str, str]]) -> None:
    context = _context(tmp_path, "--shim-bootloader=signed", *_secure_boot(tmp_path))
    _image(context)
    _files(context, SYSTEMD_BOOT, SYSTEMD_BOOT + ".signed", *UNSIGNED, *SIGNED)
    bootloader.install_bootloader(context)
    assert signing == []
    esp = context.root / "efi/EFI"
    assert (esp / "BOOT/BOOTX64.EFI").read_bytes() == SIGNED[0].encode()
    assert (esp / "BOOT/mmx64.efi").read_bytes() == SIGNED[1].encode()
    assert (esp / "BOOT/grubx64.EFI").read_bytes() == (SYSTEMD_BOOT + ".signed").encode()


def test_signed_shim_without_signed_systemd_boot_names_the_package(tmp_path: Path, processes: FakeRun) -> None:
    context = _context(tmp_path, "--shim-bootloader=signed", "--bootable=yes")
    _image(context)
    _files(context, SYSTEMD_BOOT, *SIGNED)
    with pytest.raises(BuildError, match=r"systemd-bootx64\.efi\.signed; add systemd-boot-efi-amd64-signed"):
        bootloader.install_bootloader(context)


def test_missing_shim_fails_bootable_yes_and_is_skipped_with_auto(tmp_path: Path, processes: FakeRun) -> None:
    context = _context(tmp_path / "yes", "--shim-bootloader=unsigned", "--bootable=yes")
    _image(context)
    _files(context, SYSTEMD_BOOT)
    with pytest.raises(BuildError, match=r"no unsigned shim \(/usr/lib/shim/shimx64.efi.*add shim-unsigned"):
        bootloader.install_bootloader(context)
    context = _context(tmp_path / "auto", "--shim-bootloader=unsigned")
    _image(context)
    _files(context, SYSTEMD_BOOT)
    bootloader.install_bootloader(context)
    assert (context.root / "efi/EFI/BOOT/grubx64.EFI").exists()
    assert not (context.root / "efi/EFI/BOOT/BOOTX64.EFI").exists()


def test_absolute_symlinks_point_at_the_host_and_are_skipped(tmp_path: Path, processes: FakeRun) -> None:
    context = _context(tmp_path, "--shim-bootloader=unsigned")
    _image(context)
    _files(context, "usr/share/shim/shimx64.efi")
    (context.root / "usr/lib/shim").mkdir(parents=True)
    (context.root / "usr/lib/shim/shimx64.efi").symlink_to("/usr/share/shim/shimx64.efi")
    assert shim.find(context, shim.UNSIGNED_SHIM) == context.root / "usr/share/shim/shimx64.efi"


def test_grub_behind_shim_takes_the_signed_grubs_sbat(tmp_path: Path, signing: list[tuple[str, str]],
                                                      processes: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=grub", "--shim-bootloader=unsigned", *_secure_boot(tmp_path))
    _image(context, "x86_64-efi")
    _files(context, *UNSIGNED)
    sbat = b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\ngrub,4,Free Software\n"
    signed_grub = context.root / "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
    signed_grub.parent.mkdir(parents=True)
    signed_grub.write_bytes(pe({".text": b"\x90" * 16, ".sbat": sbat + b"\0\0"}))
    bootloader.install_bootloader(context)
    (mkimage,) = processes.calls
    assert mkimage[mkimage.index("--output") + 1] == str(context.root / "efi/EFI/BOOT/grubx64.EFI")
    assert "--disable-shim-lock" not in mkimage
    assert Path(mkimage[mkimage.index("--sbat") + 1]).read_bytes() == sbat
    assert ("efi/EFI/BOOT/grubx64.EFI", "efi/EFI/BOOT/grubx64.EFI") in signing
    assert (UNSIGNED[0], "efi/EFI/BOOT/BOOTX64.EFI") in signing


def test_grub_behind_shim_with_secure_boot_needs_the_signed_grub(tmp_path: Path, signing: list[tuple[str, str]],
                                                                 processes: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=grub", "--shim-bootloader=unsigned", *_secure_boot(tmp_path))
    _image(context, "x86_64-efi")
    with pytest.raises(BuildError, match="grub-efi-amd64-signed"):
        bootloader.install_bootloader(context)


def test_signed_shim_starts_the_signed_grub(tmp_path: Path, processes: FakeRun) -> None:
    context = _context(tmp_path, "--bootloader=grub", "--shim-bootloader=signed")
    _image(context)
    _files(context, *SIGNED, "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
    bootloader.install_bootloader(context)
    assert processes.calls == []
    second = context.root / "efi/EFI/BOOT/grubx64.EFI"
    assert second.read_bytes() == b"usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
    assert (context.root / "efi/EFI/debian/grub.cfg").read_text() == "configfile /grub/grub.cfg\n"


def test_bootloader_uki_goes_behind_shim(tmp_path: Path, processes: FakeRun, monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path, "--bootloader=uki", "--shim-bootloader=unsigned", "--kernel-modules-initrd=no")
    _image(context)
    _files(context, *UNSIGNED)
    monkeypatch.setattr(uki, "build_default_initrd", lambda c: tmp_path / "initrd")
    bootloader.install_bootloader(context)
    uki.build_unified_kernel_images(context)
    ukify = next(c for c in processes.calls if c[1:2] == ["build"])
    assert f"--output={context.root / 'efi/EFI/BOOT/grubx64.EFI'}" in ukify
    assert (context.root / "efi/EFI/BOOT/BOOTX64.EFI").read_bytes() == UNSIGNED[0].encode()


def test_signed_shim_takes_the_prebuilt_uki(tmp_path: Path, processes: FakeRun,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path, "--shim-bootloader=signed", "--kernel-modules-initrd=no", "--bootable=yes")
    _image(context)
    _files(context, SYSTEMD_BOOT + ".signed", *SIGNED)
    monkeypatch.setattr(uki, "build_default_initrd", lambda c: tmp_path / "initrd")
    bootloader.install_bootloader(context)
    with pytest.raises(BuildError, match=rf"no signed UKI in /usr/lib/modules/{VERSION}/\*.efi"):
        uki.build_unified_kernel_images(context)
    _files(context, f"usr/lib/modules/{VERSION}/debian.efi")
    uki.build_unified_kernel_images(context)
    assert not any(c[1:2] == ["build"] for c in processes.calls)
    built = context.root / f"efi/EFI/Linux/debian-{VERSION}.efi"
    assert built.read_bytes() == f"usr/lib/modules/{VERSION}/debian.efi".encode()


def test_pe_section_reads_sections_and_refuses_what_is_no_pe(tmp_path: Path) -> None:
    binary = tmp_path / "x.efi"
    binary.write_bytes(pe({".sbat": b"sbat,1\n\0", ".osrel": b"ID=debian"}))
    assert shim.pe_section(binary, ".sbat") == b"sbat,1\n"
    assert shim.pe_section(binary, ".linux") is None
    binary.write_bytes(b"MZ not a PE")
    assert shim.pe_section(binary, ".sbat") is None
