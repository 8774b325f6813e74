"""Bootloader=grub and BiosBootloader=grub: one disk image (grub_image/) built for real and booted twice under
qemu (TCG, the tools tree's qemu 10): with OVMF, where EFI grub chainloads the UKI, and with SeaBIOS, where the
grub core image in the BIOS boot partition boots the type 1 entry's kernel and initrds. Both reach the login
prompt on the serial console.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

from imagebuild.tools.run import tools_tree_wrapper
from tests.helpers import ROOT, imagebuild

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parent / "grub_image"
SECTOR = 512
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BIOS_BOOT_TYPE = "21686148-6449-6E6F-744E-656564454649"
ROOT_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
BOOT_TIMEOUT = 600


@dataclass
class Built:
    directory: Path
    image: Path
    tools_tree: Path

    def tool(self, *argv: str | Path) -> str:
        args = [*tools_tree_wrapper(self.tools_tree), *(str(a) for a in argv)]
        result = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PATH": "/usr/bin:/usr/sbin"},
                                check=False)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
        return result.stdout

    def partitions(self) -> list[dict[str, str]]:
        table = json.loads(self.tool("sfdisk", "--json", self.image))["partitiontable"]
        partitions: list[dict[str, str]] = table["partitions"]
        return partitions

    def partition(self, type_uuid: str) -> dict[str, str]:
        (found,) = [p for p in self.partitions() if p["type"] == type_uuid]
        return found

    def esp_text(self, path: str) -> str:
        offset = int(self.partition(ESP_TYPE)["start"]) * SECTOR
        return self.tool("mtype", "-i", f"{self.image}@@{offset}", f"::{path}")

    def esp_bytes(self, path: str, target: Path) -> bytes:
        offset = int(self.partition(ESP_TYPE)["start"]) * SECTOR
        self.tool("mcopy", "-n", "-i", f"{self.image}@@{offset}", f"::{path}", target)
        return target.read_bytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    directory = tmp_path_factory.mktemp("grub") / "image"
    shutil.copytree(CONFIG, directory)
    result = imagebuild("-C", str(directory), "build", timeout=1500)
    assert result.returncode == 0, result.stdout + result.stderr
    from imagebuild.config import load
    from imagebuild.pipeline.subbuilds import tools_tree_for

    _, images = load(["-C", str(directory), "build"])
    tree = tools_tree_for(images[-1])
    assert tree is not None
    yield Built(directory, directory / "mkosi.output" / "grub.raw", tree)


def boot_to_login(built: Built, firmware: str, log: Path) -> tuple[str, float]:
    """The serial console up to the login prompt, and how long it took."""
    start = time.monotonic()
    child = pexpect.spawn(sys.executable, ["-m", "imagebuild", "-C", str(built.directory),
                                           f"--qemu-firmware={firmware}", "qemu"],
                          cwd=str(ROOT), encoding="utf-8", codec_errors="replace", timeout=BOOT_TIMEOUT)
    child.logfile_read = log.open("w")
    try:
        child.expect(" login: ")
    except (pexpect.TIMEOUT, pexpect.EOF):
        pytest.fail(f"QemuFirmware={firmware}: no login prompt; the console said:\n" + log.read_text()[-4000:])
    finally:
        child.terminate(force=True)
    return log.read_text(), time.monotonic() - start


def test_partitions_and_esp(built: Built, tmp_path: Path) -> None:
    types = [p["type"] for p in built.partitions()]
    assert types == [ESP_TYPE, BIOS_BOOT_TYPE, ROOT_X86_64]
    # The firmware's default loader is a grub core image; grub.cfg chainloads the UKI on EFI and boots the
    # type 1 entry on BIOS; EFI/debian/grub.cfg redirects distribution-signed grubs to it.
    assert b"GNU GRUB" in built.esp_bytes("/EFI/BOOT/BOOTX64.EFI", tmp_path / "BOOTX64.EFI")
    config = built.esp_text("/grub/grub.cfg")
    assert config.startswith("set timeout=0\n")
    assert "chainloader /EFI/Linux/debian-" in config
    assert 'if [ "${grub_platform}" = pc ]; then' in config
    assert built.esp_text("/EFI/debian/grub.cfg").strip() == "configfile /grub/grub.cfg"


def test_bios_boot_code_is_in_the_mbr_and_the_bios_boot_partition(built: Built) -> None:
    with open(built.image, "rb") as f:
        mbr = f.read(SECTOR)
        f.seek(int(built.partition(BIOS_BOOT_TYPE)["start"]) * SECTOR)
        core = f.read(64 * 1024)
    assert b"GRUB " in mbr and mbr[510:512] == b"\x55\xaa"
    assert core.strip(b"\0"), "grub-bios-setup left the BIOS boot partition empty"


def test_efi_grub_boots_the_uki_to_the_login_prompt(built: Built, tmp_path: Path) -> None:
    console, seconds = boot_to_login(built, "uefi", tmp_path / "console.log")
    print(f"OVMF + grub + UKI: login prompt after {seconds:.0f} s")
    root_uuid = built.partition(ROOT_X86_64)["uuid"].lower()
    # A chainloaded UKI: the kernel command line is the UKI's own (grub's linux command would add BOOT_IMAGE=).
    command_line = next(line for line in console.splitlines() if "Command line:" in line)
    assert "BOOT_IMAGE=" not in command_line
    assert f"root=partuuid={root_uuid}" in command_line.lower()


def test_bios_grub_boots_the_type1_entry_to_the_login_prompt(built: Built, tmp_path: Path) -> None:
    console, seconds = boot_to_login(built, "bios", tmp_path / "console.log")
    print(f"SeaBIOS + grub: login prompt after {seconds:.0f} s")
    command_line = next(line for line in console.splitlines() if "Command line:" in line)
    assert "BOOT_IMAGE=/debian/" in command_line
    assert f"root=partuuid={built.partition(ROOT_X86_64)['uuid'].lower()}" in command_line.lower()
