"""Format=disk and sysext through systemd-repart --offline, checked without mounting anything.

Four real builds share one incremental cache (only the first installs packages):
1. Format=disk with mkosi.repart/ (a verity-protected, signed root and a LUKS /home; SplitArtifacts=):
   partition table, root hash, veritysetup verify, the signature, LUKS, split files and burn;
2. and 3. Format=disk with the default partition definitions and SectorSize=4096, twice: the layout and
   reproducibility (Seed= and SourceDateEpoch= give bit-identical images);
4. Format=sysext.
Plus the workspace check on a file system that cannot fallocate (ramfs), which must fail before building.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagebuild.tools.run import tools_tree_wrapper
from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

SEED = "0e9a6fe0-68f6-408c-bbeb-136054d20445"
ROOT_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
ROOT_VERITY_X86_64 = "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"
ROOT_VERITY_SIG_X86_64 = "41092B05-9FC8-4523-994F-2DEF0408B176"
HOME = "933AC7E1-2EB4-4F13-B844-0E14E2AEF915"
PASSPHRASE = "correct horse"

BASE = """\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format={format}
Seed={seed}
SourceDateEpoch=1700000000
{extra}
[Content]
Bootable=no

[Host]
Incremental=yes
"""

VERITY_DEFINITIONS = {
    "10-root.conf": "[Partition]\nType=root\nFormat=ext4\nCopyFiles=/\nMinimize=guess\nVerity=data\n"
                    "VerityMatchKey=root\n",
    "20-root-verity.conf": "[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=root\nMinimize=best\n",
    "30-root-verity-sig.conf": "[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=root\n",
    "40-home.conf": "[Partition]\nType=home\nFormat=ext4\nEncrypt=key-file\nSizeMinBytes=32M\nSizeMaxBytes=32M\n",
}


@dataclass
class Tools:
    tree: Path

    def run(self, *argv: str | Path, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        args = [*tools_tree_wrapper(self.tree), *(str(a) for a in argv)]
        env = {**os.environ, "PATH": "/usr/bin:/usr/sbin"}
        result = subprocess.run(args, capture_output=True, text=True, env=env, check=False, input=stdin)
        if check:
            assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
        return result

    def partitions(self, image: Path, sector_size: int = 512) -> tuple[int, list[dict[str, object]]]:
        output = self.run("sfdisk", f"--sector-size={sector_size}", "--json", image).stdout
        table = json.loads(output)["partitiontable"]
        assert table["label"] == "gpt"
        return int(table["sectorsize"]), table["partitions"]


@dataclass
class Project:
    """The shared parts of the module's builds: keys, cache, tools tree."""

    base: Path
    tools: Tools

    def build(self, name: str, fmt: str, *, definitions: dict[str, str] | None = None, extra: str = "",
              output: str = "out") -> Path:
        directory = self.base / name
        write_config(directory, BASE.format(format=fmt, seed=SEED, extra=extra))
        for key in ("mkosi.key", "mkosi.crt"):
            shutil.copy(self.base / "keys" / key, directory / key)
        passphrase = directory / "mkosi.passphrase"
        passphrase.write_text(PASSPHRASE)
        passphrase.chmod(0o600)
        if definitions:
            (directory / "mkosi.repart").mkdir()
            for file, text in definitions.items():
                (directory / "mkosi.repart" / file).write_text(text)
        out = directory / output
        result = imagebuild("-C", str(directory), f"--cache-dir={self.base / 'cache'}",
                            f"--tools-tree={self.tools.tree}", f"--output-dir={out}", "-f", "build", timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
        return out


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    base = tmp_path_factory.mktemp("disk")
    keys = base / "keys"
    keys.mkdir()
    genkey = imagebuild("-C", str(keys), "genkey")
    assert genkey.returncode == 0, genkey.stderr
    from imagebuild.config import load
    from imagebuild.pipeline.subbuilds import tools_tree_for

    _, images = load(["-C", str(keys), "--tools-tree=default", "build"])
    tree = tools_tree_for(images[-1])
    assert tree is not None
    yield Project(base, Tools(tree))
    # The images and the incremental cache are large: do not leave them to pytest's kept temporary dirs.
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def verity(project: Project) -> Path:
    out = project.build("verity", "disk", definitions=VERITY_DEFINITIONS, extra="SplitArtifacts=yes\n")
    return out


@pytest.fixture(scope="module")
def defaults(project: Project) -> Path:
    return project.build("defaults", "disk", extra="SectorSize=4096\n")


@pytest.fixture(scope="module")
def defaults_again(project: Project, defaults: Path) -> Path:
    return project.build("defaults", "disk", extra="SectorSize=4096\n", output="again")


def _by_type(partitions: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(p["type"]): p for p in partitions}


def _roothash(partitions: list[dict[str, object]]) -> str:
    # repart derives the data and hash partitions' UUIDs from the two halves of the root hash.
    by_type = _by_type(partitions)
    data = str(by_type[ROOT_X86_64]["uuid"]).replace("-", "").lower()
    tree = str(by_type[ROOT_VERITY_X86_64]["uuid"]).replace("-", "").lower()
    return data + tree


def test_verity_disk_layout(project: Project, verity: Path) -> None:
    sector, partitions = project.tools.partitions(verity / "image.raw")
    assert sector == 512
    assert [p["type"] for p in partitions] == [ROOT_X86_64, ROOT_VERITY_X86_64, ROOT_VERITY_SIG_X86_64, HOME]
    # Seed= fixes the UUIDs of partitions that are not derived from a hash.
    assert str(_by_type(partitions)[HOME]["uuid"]).lower() == "d944f8cb-11e4-4127-81ff-a459aa46ef26"


def test_verity_hash_tree_verifies_and_signature_names_root_hash(project: Project, verity: Path) -> None:
    _, partitions = project.tools.partitions(verity / "image.raw")
    roothash = _roothash(partitions)
    data, tree = verity / "image.root-x86-64.raw", verity / "image.root-x86-64-verity.raw"
    project.tools.run("veritysetup", "verify", data, tree, roothash)
    wrong = roothash[:-1] + ("0" if roothash[-1] != "0" else "1")
    assert project.tools.run("veritysetup", "verify", data, tree, wrong, check=False).returncode != 0
    signature = json.loads((verity / "image.root-x86-64-verity-sig.raw").read_bytes().rstrip(b"\0"))
    assert signature["rootHash"] == roothash
    assert signature["signature"]


def test_root_partition_holds_the_image(project: Project, verity: Path) -> None:
    listing = project.tools.run("debugfs", "-R", "cat /usr/lib/os-release", verity / "image.root-x86-64.raw")
    assert "ID=debian" in listing.stdout


def test_home_is_luks_with_the_passphrase(project: Project, verity: Path) -> None:
    home = verity / "image.home.raw"
    assert home.read_bytes()[:6] == b"LUKS\xba\xbe"
    project.tools.run("cryptsetup", "open", "--test-passphrase", "--key-file=-", home, stdin=PASSPHRASE)
    wrong = project.tools.run("cryptsetup", "open", "--test-passphrase", "--key-file=-", home, stdin="nope",
                              check=False)
    assert wrong.returncode != 0


def test_split_artifacts_are_the_partitions(project: Project, verity: Path) -> None:
    sector, partitions = project.tools.partitions(verity / "image.raw")
    image = (verity / "image.raw").read_bytes()
    names = {ROOT_X86_64: "root-x86-64", ROOT_VERITY_X86_64: "root-x86-64-verity",
             ROOT_VERITY_SIG_X86_64: "root-x86-64-verity-sig", HOME: "home"}
    for partition in partitions:
        start, size = int(str(partition["start"])) * sector, int(str(partition["size"])) * sector
        split = (verity / f"image.{names[str(partition['type'])]}.raw").read_bytes()
        assert image[start:start + size] == split


def test_same_seed_gives_identical_images(defaults: Path, defaults_again: Path) -> None:
    # Seed= fixes UUIDs, the ext4 hash seed is derived from it, SourceDateEpoch= fixes the times.
    first, second = (defaults / "image.raw").read_bytes(), (defaults_again / "image.raw").read_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_burn_to_a_file(project: Project, verity: Path, tmp_path: Path) -> None:
    target = tmp_path / "device.img"
    result = imagebuild("-C", str(project.base / "verity"), f"--tools-tree={project.tools.tree}",
                        f"--cache-dir={project.base / 'cache'}", f"--output-dir={verity}", "burn", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    _, source = project.tools.partitions(verity / "image.raw")
    _, burnt = project.tools.partitions(target)
    assert [(p["type"], p["uuid"], p["size"]) for p in burnt] == [(p["type"], p["uuid"], p["size"]) for p in source]
    root = _by_type(burnt)[ROOT_X86_64]
    start, size = int(str(root["start"])) * 512, int(str(root["size"])) * 512
    with target.open("rb") as f:
        f.seek(start)
        assert f.read(size) == (verity / "image.root-x86-64.raw").read_bytes()


def test_default_definitions_disk(project: Project, defaults: Path) -> None:
    sector, partitions = project.tools.partitions(defaults / "image.raw", sector_size=4096)
    assert sector == 4096
    # Bootable=no: only the man page's 10-root.conf, with Debian's default file system.
    assert [p["type"] for p in partitions] == [ROOT_X86_64]
    start = int(str(partitions[0]["start"])) * sector
    release = project.tools.run("debugfs", "-R", "cat /usr/lib/os-release", f"{defaults / 'image.raw'}?offset={start}")
    assert "trixie" in release.stdout


def test_sysext(project: Project, verity: Path) -> None:
    out = project.build("sysext", "sysext", extra="SplitArtifacts=yes\n")
    _, partitions = project.tools.partitions(out / "image.raw")
    assert [p["type"] for p in partitions] == [ROOT_X86_64, ROOT_VERITY_X86_64, ROOT_VERITY_SIG_X86_64]
    data = out / "image.root-x86-64.raw"
    # erofs magic at offset 1024.
    assert data.read_bytes()[1024:1028] == bytes.fromhex("e2e1f5e0")
    project.tools.run("veritysetup", "verify", data, out / "image.root-x86-64-verity.raw", _roothash(partitions))
    listing = project.tools.run("dump.erofs", "--ls", "--path=/", data).stdout
    assert "usr" in listing and "etc" not in listing.split()


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "ramfs"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "none", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_workspace_without_fallocate_is_refused_before_building(ramfs: Path, tmp_path: Path) -> None:
    # ramfs cannot fallocate and keeps no sparse files: repart would fill the memory with zeros.
    directory = write_config(tmp_path / "cfg", BASE.format(format="disk", seed=SEED, extra=""))
    result = imagebuild("-C", str(directory), f"--workspace-dir={ramfs}", f"--output-dir={tmp_path / 'out'}",
                        f"--cache-dir={tmp_path / 'cache'}", "build", timeout=60)
    assert result.returncode != 0
    assert "WorkspaceDirectory=" in result.stderr and "ramfs" in result.stderr, result.stderr
    assert "fallocate" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(ramfs.iterdir()) == []
    assert not (tmp_path / "out").exists()
