"""The issue's proof: examples/disk built for real and booted with OVMF and Secure Boot under qemu.

One build (module fixture) of a copy of the example with a fresh genkey key; then, from the image itself:
the partition table, the root hash on the signed UKI's command line (and its agreement with the partition
UUIDs repart derives from it), the Secure Boot signatures of systemd-boot and the UKI, and a boot to the
login prompt in which systemd-boot enrolls the keys and the kernel reports Secure Boot enabled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

from imagebuild.tools.run import tools_tree_wrapper
from tests.helpers import ROOT, imagebuild

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "examples" / "disk"
SECTOR = 512
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
ROOT_VERITY_X86_64 = "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"
ROOT_VERITY_SIG_X86_64 = "41092B05-9FC8-4523-994F-2DEF0408B176"


@dataclass
class Built:
    directory: Path
    image: Path
    tools_tree: Path
    build_seconds: float

    def tool(self, *argv: str | Path) -> str:
        args = [*tools_tree_wrapper(self.tools_tree), *(str(a) for a in argv)]
        env = {**os.environ, "PATH": "/usr/bin:/usr/sbin"}
        result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    directory = tmp_path_factory.mktemp("example") / "disk"
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns("mkosi.output", "mkosi.key", "mkosi.crt"))
    genkey = imagebuild("-C", str(directory), "genkey")
    assert genkey.returncode == 0, genkey.stderr
    start = time.monotonic()
    result = imagebuild("-C", str(directory), "build", timeout=900)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    from imagebuild.config import load
    from imagebuild.pipeline.subbuilds import tools_tree_for

    _, images = load(["-C", str(directory), "build"])
    tree = tools_tree_for(images[-1])
    assert tree is not None
    image = directory / "mkosi.output" / "disk-example.raw"
    assert image.is_file()
    yield Built(directory, image, tree, seconds)


def _partitions(built: Built) -> list[dict[str, object]]:
    table = json.loads(built.tool("sfdisk", "--json", built.image))["partitiontable"]
    assert table["label"] == "gpt"
    partitions: list[dict[str, object]] = table["partitions"]
    return partitions


def _esp_file(built: Built, path: str, target: Path) -> Path:
    (esp,) = [p for p in _partitions(built) if p["type"] == ESP_TYPE]
    offset = int(str(esp["start"])) * SECTOR
    built.tool("mcopy", "-n", "-i", f"{built.image}@@{offset}", f"::{path}", target)
    return target


def _esp_listing(built: Built, directory: str) -> list[str]:
    (esp,) = [p for p in _partitions(built) if p["type"] == ESP_TYPE]
    offset = int(str(esp["start"])) * SECTOR
    out = built.tool("mdir", "-b", "-i", f"{built.image}@@{offset}", f"::{directory}")
    return [line.strip().rsplit("/", 1)[-1] for line in out.splitlines() if line.strip()]


def pe_section(data: bytes, name: str) -> bytes:
    """The raw contents of a PE file's section (what objcopy --only-section dumps)."""
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    assert data[pe:pe + 4] == b"PE\0\0"
    sections, optional_size = struct.unpack_from("<H", data, pe + 6)[0], struct.unpack_from("<H", data, pe + 20)[0]
    table = pe + 24 + optional_size
    for i in range(sections):
        entry = table + 40 * i
        section_name = data[entry:entry + 8].rstrip(b"\0").decode()
        virtual_size, _, raw_size, raw_offset = struct.unpack_from("<IIII", data, entry + 8)
        if section_name == name:
            return data[raw_offset:raw_offset + min(virtual_size, raw_size)]
    raise AssertionError(f"no {name} section")


def _uki(built: Built, tmp_path: Path) -> Path:
    (name,) = [n for n in _esp_listing(built, "/EFI/Linux") if n.lower().endswith(".efi")]
    return _esp_file(built, f"/EFI/Linux/{name}", tmp_path / name)


def _roothash(uki: Path) -> str:
    cmdline = pe_section(uki.read_bytes(), ".cmdline").decode().strip("\0 \n")
    match = re.search(r"(?:^| )roothash=([0-9a-f]{64})(?: |$)", cmdline)
    assert match, cmdline
    return match.group(1)


def test_partitions(built: Built) -> None:
    types = [p["type"] for p in _partitions(built)]
    assert types == [ESP_TYPE, ROOT_X86_64, ROOT_VERITY_X86_64, ROOT_VERITY_SIG_X86_64]


def test_roothash_on_the_uki_command_line_matches_the_partitions(built: Built, tmp_path: Path) -> None:
    uki = _uki(built, tmp_path)
    cmdline = pe_section(uki.read_bytes(), ".cmdline").decode()
    assert "console=ttyS0" in cmdline and "systemd.volatile=overlay" in cmdline
    roothash = _roothash(uki)
    # repart names the data and hash partitions after the two halves of the root hash.
    by_type = {p["type"]: str(p["uuid"]).lower() for p in _partitions(built)}
    assert by_type[ROOT_X86_64] == str(uuid.UUID(roothash[:32]))
    assert by_type[ROOT_VERITY_X86_64] == str(uuid.UUID(roothash[32:]))
    assert b"ID=debian" in pe_section(uki.read_bytes(), ".osrel")
    assert pe_section(uki.read_bytes(), ".uname").decode().strip("\0").endswith("-amd64")


def test_signatures(built: Built, tmp_path: Path) -> None:
    certificate = built.directory / "mkosi.crt"
    uki = _uki(built, tmp_path)
    boot = _esp_file(built, "/EFI/systemd/systemd-bootx64.efi", tmp_path / "systemd-boot.efi")
    fallback = _esp_file(built, "/EFI/BOOT/BOOTX64.EFI", tmp_path / "BOOTX64.EFI")
    for binary in (uki, boot, fallback):
        assert "Signature verification OK" in built.tool("sbverify", "--cert", certificate, binary)
    assert sorted(_esp_listing(built, "/loader/keys/auto")) == ["KEK.auth", "PK.auth", "db.auth"]
    # A certificate that did not sign them must not verify.
    other = tmp_path / "other"
    other.mkdir()
    assert imagebuild("-C", str(other), "genkey").returncode == 0
    args = [*tools_tree_wrapper(built.tools_tree), "sbverify", "--cert", str(other / "mkosi.crt"), str(uki)]
    assert subprocess.run(args, capture_output=True, env={**os.environ, "PATH": "/usr/bin"}).returncode != 0


def test_boots_with_secure_boot_to_the_login_prompt(built: Built, tmp_path: Path) -> None:
    roothash = _roothash(_uki(built, tmp_path))
    log = tmp_path / "console.log"
    # 600 s: TCG under CI's load (two workers, each booting qemu) once took more than 240 s to the prompt.
    child = pexpect.spawn(sys.executable, ["-m", "imagebuild", "-C", str(built.directory), "qemu"],
                          cwd=str(ROOT), encoding="utf-8", codec_errors="replace", timeout=600)
    child.logfile_read = log.open("w")
    try:
        child.expect(r"login:")
    except (pexpect.TIMEOUT, pexpect.EOF):
        pytest.fail("no login prompt; the console said:\n" + log.read_text()[-4000:])
    finally:
        child.terminate(force=True)
    console = log.read_text()
    assert "secureboot: Secure boot enabled" in console
    assert f"roothash={roothash}" in console
