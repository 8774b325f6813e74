"""tests/integration/configs/devlike (shaped like mkosi's own development config: drop-ins per distribution
and architecture, @ defaults, Bootable=yes with ShimBootloader=unsigned for a directory, BiosBootloader= and
SELinuxRelabel= values that do nothing for it, BuildSources= and a prepare script) builds for debian trixie
and boots in a container, where its check unit finds no failed unit and exits the container with status 42."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.boot.shim import pe_section
from tests.helpers import ROOT, imagebuild

pytestmark = pytest.mark.integration

CONFIG = ROOT / "tests" / "integration" / "configs" / "devlike"
VERDICT = 42  # SuccessActionExitStatus= of devlike-check.service


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("devlike")
    conf = base / "conf"
    # A copy: BuildSources=. mounts the configuration directory, which must stay as it was.
    subprocess.run(["cp", "-a", str(CONFIG), str(conf)], check=True)
    out = base / "out"
    result = imagebuild("-C", str(conf), "-d", "debian", "-r", "trixie", f"--output-dir={out}", "build")
    assert result.returncode == 0, result.stderr
    yield conf, out / "devlike"


def test_prepare_script_saw_the_build_sources_and_the_drop_ins(built: tuple[Path, Path]) -> None:
    conf, tree = built
    share = tree / "usr/share/devlike"
    assert (share / "source-marker.txt").read_text() == (conf / "source-marker.txt").read_text()
    assert (share / "arch").read_text() == "x86-64\n"
    assert (share / "less-path").read_text().strip().endswith("/less")
    assert (tree / "usr/bin/file").exists()
    assert not (share / "remove-me").exists()  # RemoveFiles= after the prepare script
    # BuildSourcesEphemeral=yes: what the script wrote to the sources is gone.
    assert not (conf / "ephemeral-write").exists()


def test_the_bootable_directory_has_shim_in_front_of_systemd_boot(built: tuple[Path, Path]) -> None:
    _, tree = built
    boot = tree / "efi/EFI/BOOT"
    shim = pe_section(boot / "BOOTX64.EFI", ".sbat")
    assert shim is not None and b"\nshim," in b"\n" + shim
    assert (boot / "grubx64.EFI").read_bytes() == (tree / "efi/EFI/systemd/systemd-bootx64.efi").read_bytes()
    assert (boot / "mmx64.efi").is_file()
    (entry,) = (tree / "efi/loader/entries").glob("*.conf")
    assert "cloud-amd64" in entry.read_text()


def test_boots_in_a_container_without_failed_units(built: tuple[Path, Path]) -> None:
    _, tree = built
    result = subprocess.run(
        ["systemd-nspawn", "--register=no", "--keep-unit", "--private-network", "--volatile=overlay",
         "-D", str(tree), "--boot", "systemd.wants=devlike-check.service"],
        capture_output=True, text=True, errors="replace", timeout=180, stdin=subprocess.DEVNULL, check=False,
    )
    console = result.stdout + result.stderr
    assert "DEVLIKE-FAILED=[]" in console, console[-4000:]
    assert "DEVLIKE-HOSTNAME=devlike" in console
    assert "DEVLIKE-MARKER=marker from the build sources" in console
    assert result.returncode == VERDICT, console[-4000:]
