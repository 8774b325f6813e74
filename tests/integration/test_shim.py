"""ShimBootloader=: shim in front of systemd-boot, built for real from shim_image/.

unsigned: shim, MokManager, systemd-boot and the UKI are signed with a fresh genkey key; the image boots under
OVMF with Secure Boot (TCG, the tools tree's qemu 10): systemd-boot enrolls the key, the firmware verifies
shim, shim verifies systemd-boot, and the kernel sees Secure Boot on and the MOK list that only shim makes.
signed: the distribution's signed shim and systemd-boot (Microsoft's and Debian's signatures) as they are,
and Debian's signed kernel in a type 1 entry; it boots under OVMF with Secure Boot and Microsoft's keys
enrolled (QemuFirmwareVariables=microsoft): the firmware verifies shim by Microsoft's CA, shim verifies
systemd-boot and the kernel by Debian's CA built into it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from imagebuild.tools.run import tools_tree_wrapper
from tests.helpers import ROOT, imagebuild
from tests.integration.test_grub import ESP_TYPE, SECTOR, Built

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parent / "shim_image"
BOOT_TIMEOUT = 600


def build(directory: Path, *args: str) -> Built:
    result = imagebuild("-C", str(directory), *args, "build", timeout=1500)
    assert result.returncode == 0, result.stdout + result.stderr
    from imagebuild.config import load
    from imagebuild.pipeline.subbuilds import tools_tree_for

    _, images = load(["-C", str(directory), *args, "build"])
    tree = tools_tree_for(images[-1])
    assert tree is not None
    return Built(directory, directory / "mkosi.output" / "shim.raw", tree)


def configuration(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    directory = tmp_path_factory.mktemp(name) / "image"
    shutil.copytree(CONFIG, directory)
    genkey = imagebuild("-C", str(directory), "genkey")
    assert genkey.returncode == 0, genkey.stderr
    return directory


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    yield build(configuration(tmp_path_factory, "unsigned"))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    # Debian ships no prebuilt signed UKIs, which ShimBootloader=signed would need: type 1 entries instead.
    yield build(configuration(tmp_path_factory, "signed"), "--shim-bootloader=signed", "--unified-kernel-images=no")


def esp_offset(built: Built) -> int:
    return int(built.partition(ESP_TYPE)["start"]) * SECTOR


def signers(built: Built, binary: Path) -> str:
    return built.tool("sbverify", "--list", binary)


def verifies(built: Built, binary: Path) -> bool:
    args = [*tools_tree_wrapper(built.tools_tree), "sbverify", "--cert", str(built.directory / "mkosi.crt"),
            str(binary)]
    return subprocess.run(args, capture_output=True, env={**os.environ, "PATH": "/usr/bin"}).returncode == 0


def sbat(binary: Path) -> str:
    from imagebuild.boot.shim import pe_section

    section = pe_section(binary, ".sbat")
    assert section is not None, f"{binary.name} has no .sbat section"
    return section.decode()


def test_unsigned_shim_is_the_default_loader_and_systemd_boot_its_second_stage(unsigned: Built,
                                                                              tmp_path: Path) -> None:
    shim = tmp_path / "BOOTX64.EFI"
    second = tmp_path / "grubx64.EFI"
    unsigned.esp_bytes("/EFI/BOOT/BOOTX64.EFI", shim)
    unsigned.esp_bytes("/EFI/BOOT/grubx64.EFI", second)
    unsigned.esp_bytes("/EFI/BOOT/mmx64.efi", tmp_path / "mmx64.efi")
    unsigned.esp_bytes("/EFI/systemd/systemd-bootx64.efi", tmp_path / "systemd-boot.efi")
    assert "\nshim," in "\n" + sbat(shim)
    assert "systemd-boot" in sbat(second)
    assert second.read_bytes() == (tmp_path / "systemd-boot.efi").read_bytes()
    for binary in (shim, second, tmp_path / "mmx64.efi"):
        assert verifies(unsigned, binary), f"{binary.name} is not signed with mkosi.key"


def boot_to_login(built: Built, log: Path, *args: str) -> str:
    """`imagebuild qemu` on the built image until the login prompt; the console up to there."""
    start = time.monotonic()
    child = pexpect.spawn(sys.executable, ["-m", "imagebuild", "-C", str(built.directory), *args, "qemu"],
                          cwd=str(ROOT), encoding="utf-8", codec_errors="replace", timeout=BOOT_TIMEOUT)
    child.logfile_read = log.open("w")
    try:
        child.expect(" login: ")
    except (pexpect.TIMEOUT, pexpect.EOF):
        pytest.fail("no login prompt; the console said:\n" + log.read_text()[-4000:])
    finally:
        child.terminate(force=True)
    print(f"{built.image.name} {' '.join(args)}: login prompt after {time.monotonic() - start:.0f} s")
    return log.read_text()


def test_unsigned_shim_boots_with_secure_boot_to_the_login_prompt(unsigned: Built, tmp_path: Path) -> None:
    console = boot_to_login(unsigned, tmp_path / "console.log")
    assert "Custom Secure Boot keys successfully enrolled" in console
    assert "secureboot: Secure boot enabled" in console
    # Only shim publishes the MOK list (the MOKvar configuration table) that the kernel reads its keys from.
    assert "UEFI:MokListRT (MOKvar table)" in console


def test_signed_shim_and_systemd_boot_are_the_distributions_own(signed: Built, tmp_path: Path) -> None:
    shim = tmp_path / "BOOTX64.EFI"
    second = tmp_path / "grubx64.EFI"
    mok = tmp_path / "mmx64.efi"
    signed.esp_bytes("/EFI/BOOT/BOOTX64.EFI", shim)
    signed.esp_bytes("/EFI/BOOT/grubx64.EFI", second)
    signed.esp_bytes("/EFI/BOOT/mmx64.efi", mok)
    assert "Microsoft" in signers(signed, shim)
    assert "\nshim," in "\n" + sbat(shim)
    assert "Debian" in signers(signed, second) and "systemd-boot" in sbat(second)
    assert "Debian" in signers(signed, mok)
    # SecureBoot=yes signs nothing here: these are to boot with the distribution's keys, not ours.
    for binary in (shim, second, mok):
        assert not verifies(signed, binary), f"{binary.name} was signed with mkosi.key"
    entries = signed.tool("mdir", "-b", "-i", f"{signed.image}@@{esp_offset(signed)}", "::/loader/entries")
    assert ".conf" in entries


def test_signed_shim_boots_with_secure_boot_and_microsofts_keys(signed: Built, tmp_path: Path) -> None:
    console = boot_to_login(signed, tmp_path / "console.log", "--shim-bootloader=signed",
                            "--unified-kernel-images=no", "--qemu-firmware-variables=microsoft")
    # The keys were there already: nothing was enrolled, the firmware verified shim by Microsoft's CA.
    assert "Custom Secure Boot keys successfully enrolled" not in console
    assert "secureboot: Secure boot enabled" in console
    assert "UEFI:MokListRT (MOKvar table)" in console
    # The Debian CA that shim carries (and checked systemd-boot and the kernel by) reached the kernel's keyring.
    assert "Debian Secure Boot CA" in console
