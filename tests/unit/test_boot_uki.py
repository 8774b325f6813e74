"""The boot chain's decisions and command lines, with the process layer faked."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from imagebuild.boot import bootloader, esp, secure_boot, uki
from imagebuild.boot.kernel import Kernel
from imagebuild.config import Config, load
from imagebuild.context import Context
from imagebuild.errors import BuildError


def _config(directory: Path, *args: str) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    _, images = load(["-C", str(directory), "-d", "debian", "-r", "trixie", *args, "build"])
    return images[-1]


def _tools_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tools"
    for name in ("ukify", "sbsign", "sbsiglist", "sbvarsign", "depmod"):
        (tree / "usr/bin").mkdir(parents=True, exist_ok=True)
        (tree / "usr/bin" / name).write_text("")
    (tree / "usr/lib/systemd").mkdir(parents=True)
    (tree / "usr/lib/systemd/systemd-measure").write_text("")
    (tree / "usr/lib/x86_64-linux-gnu").mkdir()
    (tree / "usr/lib/x86_64-linux-gnu/libtss2-esys.so.0").write_text("")
    return tree


def _context(tmp_path: Path, *args: str) -> Context:
    workspace = tmp_path / "ws"
    (workspace / "artifacts").mkdir(parents=True)
    return Context(_config(tmp_path / "conf", *args), workspace, tmp_path / "cache", _tools_tree(tmp_path))


def _root_with_kernel(context: Context, version: str = "6.12.1-amd64") -> Kernel:
    root = context.root
    (root / "usr/lib/modules" / version).mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "boot" / f"vmlinuz-{version}").write_bytes(b"kernel")
    (root / "usr/lib/os-release").write_text("ID=debian\n")
    (root / "usr/lib/systemd/boot/efi").mkdir(parents=True)
    (root / "usr/lib/systemd/boot/efi/systemd-bootx64.efi").write_bytes(b"MZ-boot")
    (root / "usr/lib/systemd/boot/efi/linuxx64.efi.stub").write_bytes(b"MZ-stub")
    return Kernel(version, root / "boot" / f"vmlinuz-{version}")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    from imagebuild.boot.keys import make_key_pair, write_key_pair

    key, crt = tmp_path / "k.key", tmp_path / "k.crt"
    write_key_pair(make_key_pair("test", 5), key, crt, force=False)
    return key, crt


class FakeRun:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, context: Any, argv: Sequence[Any], **kwargs: Any) -> str:
        args = [str(a) for a in argv]
        self.calls.append(args)
        for a in args:
            for option in ("--output=", ):
                if a.startswith(option):
                    Path(a[len(option):]).write_bytes(b"MZ")
        if "--output" in args:
            Path(args[args.index("--output") + 1]).write_bytes(b"MZ")
        return ""


def test_auto_bootable_only_for_disk_like_formats(tmp_path: Path) -> None:
    directory = _context(tmp_path / "a", "-t", "directory")
    _root_with_kernel(directory)
    assert esp.bootable_kernels(directory) == []
    disk = _context(tmp_path / "b", "-t", "disk")
    kernel = _root_with_kernel(disk)
    assert esp.bootable_kernels(disk) == [kernel]
    assert esp.wants_uefi(disk)


def test_bootable_yes_without_kernel_fails_with_advice(tmp_path: Path) -> None:
    context = _context(tmp_path, "-t", "directory", "--bootable=yes")
    with pytest.raises(BuildError, match=r"Bootable=yes but the image has no kernel.*linux-image-amd64"):
        esp.bootable_kernels(context)


def test_bootable_no_builds_nothing(tmp_path: Path) -> None:
    context = _context(tmp_path, "-t", "disk", "--bootable=no")
    _root_with_kernel(context)
    bootloader.install_bootloader(context)
    assert not (context.root / "efi").exists()


def test_systemd_boot_unsigned(tmp_path: Path) -> None:
    context = _context(tmp_path, "-t", "disk")
    _root_with_kernel(context)
    bootloader.install_bootloader(context)
    assert (context.root / "efi/EFI/systemd/systemd-bootx64.efi").read_bytes() == b"MZ-boot"
    assert (context.root / "efi/EFI/BOOT/BOOTX64.EFI").read_bytes() == b"MZ-boot"
    assert "secure-boot-enroll" not in (context.root / "efi/loader/loader.conf").read_text()


def test_systemd_boot_from_the_distribution_signed_binary(tmp_path: Path) -> None:
    # Debian trixie's systemd-boot pulls in systemd-boot-efi-amd64-signed, which has only the .signed binary.
    context = _context(tmp_path, "-t", "directory", "--bootable=yes")
    _root_with_kernel(context)
    efi = context.root / "usr/lib/systemd/boot/efi"
    (efi / "systemd-bootx64.efi").rename(efi / "systemd-bootx64.efi.signed")
    bootloader.install_bootloader(context)
    assert (context.root / "efi/EFI/systemd/systemd-bootx64.efi").read_bytes() == b"MZ-boot"
    assert (context.root / "efi/EFI/BOOT/BOOTX64.EFI").read_bytes() == b"MZ-boot"


def test_systemd_boot_signed_with_enrollment(tmp_path: Path, keys: tuple[Path, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    key, crt = keys
    fake = FakeRun()
    monkeypatch.setattr(secure_boot, "run_tool", fake)
    context = _context(tmp_path, "-t", "disk", "--secure-boot=yes", f"--secure-boot-key={key}",
                       f"--secure-boot-certificate={crt}")
    _root_with_kernel(context)
    bootloader.install_bootloader(context)
    sbsign = [c for c in fake.calls if c[0].endswith("sbsign")]
    assert len(sbsign) == 2 and all(["--key", str(key)] == c[1:3] for c in sbsign)
    auto = context.root / "efi/loader/keys/auto"
    assert sorted(p.name for p in auto.iterdir()) == ["KEK.auth", "PK.auth", "db.auth"]
    assert "secure-boot-enroll force" in (context.root / "efi/loader/loader.conf").read_text()
    der = x509.load_pem_x509_certificate(crt.read_bytes()).public_bytes(serialization.Encoding.DER)
    for name in ("PK", "KEK", "db"):
        data = (auto / f"{name}.auth").read_bytes()
        # EFI_TIME (16 bytes, pads zero), then WIN_CERTIFICATE_UEFI_GUID with the PKCS#7 GUID.
        assert data[7:16] == bytes(9)
        length, revision, kind = struct.unpack_from("<IHH", data, 16)
        assert (revision, kind) == (0x0200, 0x0EF1)
        assert data[24:40] == secure_boot.EFI_CERT_TYPE_PKCS7_GUID.bytes_le
        payload = data[16 + length:]
        # The payload is one EFI_SIGNATURE_LIST with our certificate.
        assert payload[:16] == secure_boot.EFI_CERT_X509_GUID.bytes_le
        assert struct.unpack_from("<I", payload, 16)[0] == len(payload)
        assert payload.endswith(der)


def test_signed_data_is_unwrapped_from_content_info(keys: tuple[Path, Path]) -> None:
    import datetime

    key_path, crt = keys
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    certificate = x509.load_pem_x509_certificate(crt.read_bytes())
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    data = secure_boot.authenticated_variable("PK", b"payload", key, certificate, when)
    assert struct.unpack_from("<HBBBBB", data, 0) == (2024, 5, 6, 7, 8, 9)
    length = struct.unpack_from("<I", data, 16)[0]
    signed_data = data[40:16 + length]
    # A DER SEQUENCE (SignedData), not the ContentInfo around it (which starts with the pkcs7 OID).
    assert signed_data[0] == 0x30 and b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" not in signed_data[:20]
    assert data.endswith(b"payload")


def test_pesign_is_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    key, crt = keys
    context = _context(tmp_path, "-t", "disk", "--secure-boot=yes", f"--secure-boot-key={key}",
                       f"--secure-boot-certificate={crt}", "--secure-boot-sign-tool=pesign")
    with pytest.raises(BuildError, match="not supported yet: SecureBootSignTool=pesign"):
        secure_boot.signing_files(context.config)


def test_missing_key_file_names_the_setting(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    _, crt = keys
    context = _context(tmp_path, "-t", "disk", "--secure-boot=yes", f"--secure-boot-key={tmp_path}/nope.key",
                       f"--secure-boot-certificate={crt}")
    with pytest.raises(BuildError, match=r"SecureBootKey=.*nope\.key: no such file.*genkey"):
        secure_boot.signing_files(context.config)


def test_ukify_command_line_with_verity_and_signing(tmp_path: Path, keys: tuple[Path, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    key, crt = keys
    context = _context(tmp_path, "-t", "disk", "--secure-boot=yes", f"--secure-boot-key={key}",
                       f"--secure-boot-certificate={crt}", "--kernel-command-line=console=ttyS0 quiet")
    kernel = _root_with_kernel(context)
    monkeypatch.setattr(uki, "verity_parameters", lambda c: ["roothash=abcd"])
    monkeypatch.setattr(uki, "build_default_initrd", lambda c: tmp_path / "initrd.cpio.zst")
    monkeypatch.setattr(uki, "build_modules_initrd", lambda c, k: tmp_path / f"modules-{k.version}.cpio")
    fake = FakeRun()
    monkeypatch.setattr(uki, "run_tool", fake)
    uki.build_unified_kernel_images(context)
    (argv,) = fake.calls
    assert argv[0] == "/usr/bin/ukify" and argv[1] == "build"
    assert f"--linux={kernel.image}" in argv
    assert "--cmdline=console=ttyS0 quiet roothash=abcd" in argv
    assert [a for a in argv if a.startswith("--initrd=")] == [
        f"--initrd={tmp_path / 'initrd.cpio.zst'}", f"--initrd={tmp_path / f'modules-{kernel.version}.cpio'}"]
    assert f"--uname={kernel.version}" in argv
    assert f"--output={context.root}/efi/EFI/Linux/debian-{kernel.version}.efi" in argv
    assert f"--secureboot-private-key={key}" in argv and "--signtool=sbsign" in argv
    # SignExpectedPcr=auto: systemd-measure is in the tools tree and a key is there.
    assert f"--pcr-private-key={key}" in argv
    assert f"--stub={context.root}/usr/lib/systemd/boot/efi/linuxx64.efi.stub" in argv


def test_bootloader_uki_and_user_initrds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    initrd = tmp_path / "my.initrd"
    initrd.write_bytes(b"x")
    context = _context(tmp_path, "-t", "disk", "--bootloader=uki", f"--initrd={initrd}",
                       "--kernel-modules-initrd=no", "--sign-expected-pcr=no")
    _root_with_kernel(context)
    monkeypatch.setattr(uki, "build_default_initrd", lambda c: pytest.fail("no default initrd wanted"))
    fake = FakeRun()
    monkeypatch.setattr(uki, "run_tool", fake)
    bootloader.install_bootloader(context)
    uki.build_unified_kernel_images(context)
    (argv,) = fake.calls
    assert [a for a in argv if a.startswith("--initrd=")] == [f"--initrd={initrd}"]
    assert f"--output={context.root}/efi/EFI/BOOT/BOOTX64.EFI" in argv
    assert not any(a.startswith("--secureboot") or a.startswith("--pcr") for a in argv)
    assert "--cmdline=console=ttyS0" in argv
    assert not (context.root / "efi/EFI/systemd").exists()


def test_type1_entries_without_ukis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path, "-t", "disk", "--unified-kernel-images=no", "--kernel-modules-initrd=no")
    kernel = _root_with_kernel(context)
    initrd = tmp_path / "initrd.cpio.zst"
    initrd.write_bytes(b"initrd")
    monkeypatch.setattr(uki, "build_default_initrd", lambda c: initrd)
    uki.build_unified_kernel_images(context)
    entry = (context.root / f"efi/loader/entries/debian-{kernel.version}.conf").read_text()
    assert f"linux /debian/{kernel.version}/linux" in entry
    assert f"initrd /debian/{kernel.version}/initrd0" in entry
    assert "options console=ttyS0" in entry
    assert (context.root / f"efi/debian/{kernel.version}/initrd0").read_bytes() == b"initrd"


def test_grub_without_its_modules_in_the_image_is_refused_with_advice(tmp_path: Path) -> None:
    # Bootloader=grub was refused as "not supported yet" before boot/grub.py; now only a missing grub is.
    context = _context(tmp_path, "-t", "disk", "--bootloader=grub", "--bootable=yes")
    _root_with_kernel(context)
    with pytest.raises(BuildError, match="grub-efi-amd64-bin"):
        bootloader.install_bootloader(context)


def test_sign_expected_pcr_yes_passes_the_secure_boot_key_to_ukify(
        tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    key, crt = keys
    context = _context(tmp_path, "-t", "disk", "--secure-boot=yes", f"--secure-boot-key={key}",
                       f"--secure-boot-certificate={crt}", "--sign-expected-pcr=yes", "--kernel-modules-initrd=no")
    uki.check_signed_pcrs(context.config)
    _root_with_kernel(context)
    monkeypatch.setattr(uki, "build_default_initrd", lambda c: tmp_path / "initrd.cpio.zst")
    fake = FakeRun()
    monkeypatch.setattr(uki, "run_tool", fake)
    uki.build_unified_kernel_images(context)
    (argv,) = fake.calls
    # ukify derives .pcrpkey from the private key and signs systemd-measure's default phase paths.
    assert [a for a in argv if a.startswith("--pcr")] == [f"--pcr-private-key={key}", "--pcr-banks=sha256"]
    assert f"--secureboot-private-key={key}" in argv


def test_sign_expected_pcr_yes_is_refused_before_any_work(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    key, crt = keys
    without_secure_boot = _config(tmp_path / "a", "-t", "disk", "--sign-expected-pcr=yes", f"--secure-boot-key={key}")
    with pytest.raises(BuildError, match=r"SignExpectedPcr=yes depends on SecureBoot=yes.*SignExpectedPcr=auto"):
        uki.check_signed_pcrs(without_secure_boot)
    uki.check_signed_pcrs(_config(tmp_path / "b", "-t", "disk", "--sign-expected-pcr=yes", "--secure-boot=yes",
                                  f"--secure-boot-key={key}", f"--secure-boot-certificate={crt}"))
    uki.check_signed_pcrs(_config(tmp_path / "c", "-t", "disk"))  # auto: nothing to check


def test_sign_expected_pcr_yes_without_systemd_measure_names_the_package(
        tmp_path: Path, keys: tuple[Path, Path]) -> None:
    key, crt = keys
    context = _context(tmp_path, "-t", "disk", "--secure-boot=yes", f"--secure-boot-key={key}",
                       f"--secure-boot-certificate={crt}", "--sign-expected-pcr=yes")
    assert context.tools_tree is not None
    (context.tools_tree / "usr/lib/systemd/systemd-measure").unlink()
    with pytest.raises(BuildError, match=r"systemd-measure \(package systemd\) is missing in the tools tree; add it"):
        uki.want_signed_pcrs(context)
