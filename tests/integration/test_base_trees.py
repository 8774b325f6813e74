"""BaseTrees= on a directory image that imagebuild built: a system image on top of a base image."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration


def installed(tree: Path, package: str) -> bool:
    out = subprocess.run(["dpkg-query", f"--admindir={tree}/var/lib/dpkg", "-W", "-f=${Status}", package],
                         capture_output=True, text=True, check=False)
    return out.stdout.endswith("ok installed")


def test_system_image_on_a_base_image(tmp_path: Path) -> None:
    conf = write_config(
        tmp_path / "conf",
        "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=directory\n",
    )
    (conf / "mkosi.images").mkdir()
    (conf / "mkosi.images/base.conf").write_text("[Content]\nPackages=apt\nCleanPackageMetadata=no\n")
    (conf / "mkosi.images/system.conf").write_text(
        "[Config]\nDependencies=base\n[Content]\nBaseTrees=%O/base\nPackages=apt\n         netbase\n"
    )
    out = tmp_path / "out"
    result = imagebuild("-C", str(conf), f"--output-dir={out}", f"--package-cache-dir={tmp_path}/cache", "build")
    assert result.returncode == 0, result.stderr
    system = out / "system"
    # The base image's packages stay; only the missing one was installed on top.
    assert installed(system, "apt") and installed(system, "netbase")
    assert not installed(out / "base", "netbase")
    assert "installing remaining packages" not in result.stderr.split("Building system")[-1]
