"""Partition definitions and the systemd-repart command line, with the process layer faked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from imagebuild.config import Config, load
from imagebuild.context import Context
from imagebuild.errors import BuildError, ImageBuildError
from imagebuild.outputs import disk, esp, partitions, repart
from imagebuild.verbs import burn
from tests.helpers import write_config

SEED = "0e9a6fe0-68f6-408c-bbeb-136054d20445"


def config(tmp_path: Path, text: str = "", *args: str, distribution: str = "debian") -> Config:
    release = "trixie" if distribution == "debian" else "40"
    write_config(tmp_path / "conf", f"[Distribution]\nDistribution={distribution}\nRelease={release}\n" + text)
    _, images = load(["-C", str(tmp_path / "conf"), *args, "build"])
    return images[-1]


def context(tmp_path: Path, cfg: Config) -> Context:
    workspace = tmp_path / "ws"
    for sub in ("root", "staging", "artifacts"):
        (workspace / sub).mkdir(parents=True, exist_ok=True)
    return Context(cfg, workspace, tmp_path / "pkgcache")


def test_default_root_only_when_not_bootable(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Content]\nBootable=no\n[Output]\nFormat=disk\n")
    files = partitions.default_disk_definitions(context(tmp_path, cfg))
    assert files == {"10-root.conf": "[Partition]\nType=root\nFormat=ext4\nCopyFiles=/\nMinimize=guess\n"}


def test_default_esp_exactly_as_the_man_page(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Content]\nBootable=yes\n[Output]\nFormat=disk\n")
    files = partitions.default_disk_definitions(context(tmp_path, cfg))
    assert list(files) == ["00-esp.conf", "10-root.conf"]
    assert files["00-esp.conf"] == (
        "[Partition]\nType=esp\nFormat=vfat\nCopyFiles=/boot:/\nCopyFiles=/efi:/\nSizeMinBytes=512M\n"
        "SizeMaxBytes=512M\n"
    )


def test_auto_bootable_follows_the_installed_boot_loader(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Output]\nFormat=disk\n")
    ctx = context(tmp_path, cfg)
    assert "00-esp.conf" not in partitions.default_disk_definitions(ctx)
    loader = ctx.root / "efi/EFI/BOOT/BOOTX64.EFI"
    loader.parent.mkdir(parents=True)
    loader.write_bytes(b"MZ")
    assert "00-esp.conf" in partitions.default_disk_definitions(ctx)


def test_bios_partition_with_grub(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Content]\nBiosBootloader=grub\n[Output]\nFormat=disk\n")
    files = partitions.default_disk_definitions(context(tmp_path, cfg))
    assert list(files) == ["00-esp.conf", "05-bios.conf", "10-root.conf"]
    assert "Type=21686148-6449-6e6f-744e-656564454649\nSizeMinBytes=1M\nSizeMaxBytes=1M\n" in files["05-bios.conf"]


def test_distribution_default_filesystem(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Content]\nBootable=no\n", distribution="fedora")
    assert "Format=btrfs\n" in partitions.default_disk_definitions(context(tmp_path, cfg))["10-root.conf"]


def test_repart_directories_replace_the_defaults(tmp_path: Path) -> None:
    write_config(tmp_path / "conf", "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=disk\n")
    (tmp_path / "conf/mkosi.repart").mkdir()
    (tmp_path / "conf/mkosi.repart/50-x.conf").write_text("[Partition]\nType=root\n")
    _, images = load(["-C", str(tmp_path / "conf"), "build"])
    ctx = context(tmp_path, images[-1])
    assert partitions.disk_definition_directories(ctx) == [tmp_path / "conf/mkosi.repart"]
    assert not (ctx.workspace / "repart-definitions").exists()


@pytest.mark.parametrize(("fmt", "sources"), [
    ("sysext", ["/opt", "/usr"]), ("confext", ["/etc"]), ("portable", ["/"]),
])
def test_extension_definitions(tmp_path: Path, fmt: str, sources: list[str]) -> None:
    cfg = config(tmp_path, f"[Output]\nFormat={fmt}\n")
    files = partitions.extension_definitions(cfg)
    assert list(files) == ["10-root.conf", "20-root-verity.conf"]
    assert "Format=erofs\n" in files["10-root.conf"]
    assert [line.split("=", 1)[1] for line in files["10-root.conf"].splitlines()
            if line.startswith("CopyFiles=")] == sources


def test_extension_signature_partition_with_a_key(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/mkosi.key").write_text("key")
    (tmp_path / "conf/mkosi.key").chmod(0o600)
    (tmp_path / "conf/mkosi.crt").write_text("crt")
    cfg = config(tmp_path, "[Output]\nFormat=sysext\n")
    assert "30-root-verity-sig.conf" in partitions.extension_definitions(cfg)


def test_signature_without_key_says_genkey(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Output]\nFormat=disk\n")
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "30-sig.conf").write_text("[Partition]\nType=root-verity-sig\nVerity=signature\n")
    with pytest.raises(BuildError, match="imagebuild genkey"):
        repart.check_definitions(cfg, [defs])


def test_encryption_without_passphrase(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Output]\nFormat=disk\n")
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "40-home.conf").write_text("[Partition]\nType=home\nEncrypt=key-file\n")
    with pytest.raises(BuildError, match=r"mkosi\.passphrase"):
        repart.check_definitions(cfg, [defs])


def test_empty_repart_directory(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Output]\nFormat=disk\n")
    (tmp_path / "defs").mkdir()
    with pytest.raises(BuildError, match="no partition definitions"):
        repart.check_definitions(cfg, [tmp_path / "defs"])


def test_options_follow_the_settings(tmp_path: Path) -> None:
    passphrase = tmp_path / "pass"
    passphrase.write_text("x")
    passphrase.chmod(0o600)
    cfg = config(tmp_path, f"[Output]\nFormat=disk\nSeed={SEED}\nRepartOffline=no\n"
                 f"[Validation]\nPassphrase={passphrase}\nVerityKey=pkcs11:token\nVerityKeySource=engine:pkcs11\n"
                 f"VerityCertificate={passphrase}\n")
    options = repart.repart_options(cfg, sector_size=512)
    assert f"--seed={SEED}" in options
    assert "--offline=no" in options
    assert "--sector-size=512" in options
    assert f"--key-file={passphrase}" in options
    assert "--private-key-source=engine:pkcs11" in options
    assert "--private-key=pkcs11:token" in options
    assert "--json=pretty" in options


def test_defaults_random_seed_offline_and_sector_size(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Output]\nFormat=disk\n")
    options = repart.repart_options(cfg, sector_size=512)
    assert "--seed=random" in options and "--offline=yes" in options and "--sector-size=512" in options
    sized = config(tmp_path / "b", "[Output]\nFormat=disk\nSectorSize=4096\n")
    assert "--sector-size=4096" in repart.repart_options(sized, sector_size=512)


def test_ext4_hash_seed_is_fixed_by_the_seed(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"[Output]\nFormat=disk\nSeed={SEED}\nSourceDateEpoch=1700000000\n")
    env = repart.repart_environment(cfg, tmp_path)
    assert env["SYSTEMD_REPART_MKFS_OPTIONS_EXT4"] == f"-E hash_seed={repart.ext4_hash_seed(SEED)}"
    assert repart.ext4_hash_seed(SEED) == repart.ext4_hash_seed(SEED) != repart.ext4_hash_seed(SEED[::-1])
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert env["TMPDIR"] == str(tmp_path)
    random = config(tmp_path / "b", "[Output]\nFormat=disk\n")
    assert "SYSTEMD_REPART_MKFS_OPTIONS_EXT4" not in repart.repart_environment(random, tmp_path)


FIRST_PASS = [
    {"type": "esp", "label": "esp", "uuid": "u1", "partno": 0, "offset": 1048576, "raw_size": 536870912,
     "activity": "create"},
    {"type": "root-x86-64", "label": "root-x86-64", "uuid": "u2", "partno": 1, "offset": 537919488,
     "raw_size": 33554432, "roothash": "ab" * 32},
    {"type": "root-x86-64-verity", "label": "root-x86-64-verity", "uuid": "u3", "partno": 2, "offset": 5,
     "raw_size": 6, "roothash": "ab" * 32},
]


class FakeRepart:
    """Stands in for run_tool: records the command and writes the JSON where the shell would."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.calls: list[list[str]] = []

    def __call__(self, where: object, argv: Sequence[str | Path], **kwargs: Any) -> str:
        args = [str(a) for a in argv]
        self.calls.append(args)
        Path(args[4]).write_text(json.dumps(self.entries))
        return ""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRepart:
    fake = FakeRepart(FIRST_PASS)
    monkeypatch.setattr(repart, "run_tool", fake)
    monkeypatch.setattr(repart, "require_tool", lambda *a, **k: "/usr/bin/systemd-repart")
    return fake


def test_two_passes_and_the_root_hash(tmp_path: Path, fake: FakeRepart) -> None:
    cfg = config(tmp_path, f"[Content]\nBootable=yes\n[Output]\nFormat=disk\nSeed={SEED}\n")
    ctx = context(tmp_path, cfg)
    disk.write_partitions_before_esp(ctx)
    first = fake.calls[0][5:]
    assert first[0] == "/usr/bin/systemd-repart"
    assert "--empty=create" in first and "--size=auto" in first
    assert "--defer-partitions=esp,xbootldr" in first
    assert first[-1] == str(ctx.staging / "image.raw")
    assert (ctx.root / "efi").is_dir() and (ctx.root / "boot").is_dir()
    assert repart.verity_kernel_parameters(ctx) == ["roothash=" + "ab" * 32]
    fake.entries = [{**e, "roothash": "TBD"} for e in FIRST_PASS]
    assert disk.produce(ctx) == [ctx.staging / "image.raw"]
    second = fake.calls[1][5:]
    assert "--empty=allow" in second and not any(a.startswith("--defer") for a in second)
    # The second pass ("TBD") does not overwrite the first pass's root hash.
    assert repart.verity_kernel_parameters(ctx) == ["roothash=" + "ab" * 32]


def test_usr_hash(tmp_path: Path) -> None:
    found = repart.roothash([repart.Partition("usr-x86-64-verity", "", "", 0, 0, 0, "cd" * 32, None)])
    assert found == ("usrhash", "cd" * 32)
    assert repart.roothash([repart.Partition("root-x86-64", "", "", 0, 0, 0, None, None)]) is None


def test_no_root_hash_outside_disk_builds(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[Output]\nFormat=directory\n")
    ctx = context(tmp_path, cfg)
    disk.write_partitions_before_esp(ctx)
    assert repart.verity_kernel_parameters(ctx) == []


def test_esp_is_large_enough_for_fat32() -> None:
    assert esp.esp_size(1000, 512) == 36 * 1024 * 1024
    assert esp.esp_size(100 * 1024 * 1024, 512) == 110 * 1024 * 1024
    assert esp.esp_size(1000, 4096) == 260 * 1024 * 1024
    assert "CopyFiles=/EFI/BOOT/BOOTX64.EFI:/EFI/BOOT/BOOTX64.EFI\n" in esp.esp_definition("x64", 5)


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 8:17 / /mnt rw shared:2 - ext4 /dev/sdb1 rw
"""


def test_mounted_device_numbers() -> None:
    assert burn._mounted_numbers(MOUNTINFO) == {(254, 0): "/", (8, 17): "/mnt"}


def test_burn_refuses_a_mounted_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device = tmp_path / "device"
    device.write_bytes(b"")
    monkeypatch.setattr(burn, "_loop_devices_of", lambda f: [device])
    monkeypatch.setattr(burn, "_device_numbers", lambda d: {(8, 16), (8, 17)})
    with pytest.raises(ImageBuildError, match=r"mounted \(at /mnt"):
        burn.check_not_mounted(device, MOUNTINFO)
    monkeypatch.setattr(burn, "_device_numbers", lambda d: {(8, 32)})
    burn.check_not_mounted(device, MOUNTINFO)


def test_burn_needs_a_disk_image(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="not a disk image"):
        burn.image_to_burn(config(tmp_path, "[Output]\nFormat=tar\n"))
    with pytest.raises(ImageBuildError, match="CompressOutput"):
        burn.image_to_burn(config(tmp_path / "b", "[Output]\nFormat=disk\nCompressOutput=zstd\n"))
    assert burn.image_to_burn(config(tmp_path / "c", "[Output]\nFormat=disk\n")).name == "image.raw"


def test_esp_wraps_the_uki(tmp_path: Path, fake: FakeRepart, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, "[Output]\nFormat=esp\n")
    ctx = context(tmp_path, cfg)

    def make_uki(c: Context) -> Path:
        uki = c.staging / "image.raw"  # what Format=uki's producer names its file for Format=esp
        uki.write_bytes(b"MZ" + b"\0" * 100)
        return uki

    monkeypatch.setattr(esp, "_make_uki", make_uki)
    fake.entries = FIRST_PASS[:1]
    artifacts = esp.produce(ctx)
    assert artifacts == [ctx.staging / "image.raw", ctx.staging / "image.efi"]
    definition = (ctx.workspace / "esp-definitions/00-esp.conf").read_text()
    assert "CopyFiles=/EFI/BOOT/BOOTX64.EFI:/EFI/BOOT/BOOTX64.EFI\n" in definition
    assert (ctx.workspace / "esp-tree/EFI/BOOT/BOOTX64.EFI").read_bytes() == (ctx.staging / "image.efi").read_bytes()
    assert f"--root={ctx.workspace / 'esp-tree'}" in fake.calls[0]
    assert f"SizeMinBytes={36 * 1024 * 1024}\n" in definition
    assert "--sector-size=512" in fake.calls[0]
