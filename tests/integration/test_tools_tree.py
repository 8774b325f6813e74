"""ToolsTree=: a real default tools tree (trixie), built once per cache and used for the build's tools.

The tree is cached in the default cache directory ($XDG_CACHE_HOME/imagebuild/tools), so only the first
session on a machine pays for building it (about a minute).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagebuild import paths
from imagebuild.config import load
from imagebuild.errors import BuildError
from imagebuild.tools.tools_tree import (
    require_tool,
    run_tool,
    tool,
    tools_cache_directory,
    tools_tree_for,
    tools_tree_name,
    tools_tree_spec,
)
from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

CONFIG = "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=directory\n[Host]\nToolsTree=default\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    base = tmp_path_factory.mktemp("tools-tree")
    conf = write_config(base / "conf", CONFIG)
    result = imagebuild("-C", str(conf), f"--output-dir={base}/out", "build")
    assert result.returncode == 0, result.stderr
    _, images = load(["-C", str(conf), "build"])
    tree = tools_cache_directory(images[-1]) / tools_tree_name(tools_tree_spec(images[-1]))
    assert tree.parent == paths.user_cache_home() / "imagebuild/tools"
    assert (tree / "usr/bin/systemd-repart").exists(), result.stderr
    return result, tree


def test_tools_come_from_the_tree(built: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, tree = built
    repart = require_tool(tree, "systemd-repart", minimum_version=254)
    assert run_tool(tree, [repart, "--version"]).startswith("systemd 257")
    # ukify is Python: it must run with the tree's python3 and its pefile module.
    assert "ukify 257" in run_tool(tree, [tool(tree, "ukify"), "--version"])
    assert "QEMU emulator version 10." in run_tool(tree, [tool(tree, "qemu-system-x86_64"), "--version"])
    assert (tree / "usr/share/OVMF/OVMF_CODE_4M.secboot.fd").is_file()
    assert (tree / "usr/lib/systemd/boot/efi/systemd-bootx64.efi").is_file()


def test_the_hosts_old_repart_is_refused_with_advice() -> None:
    # The host is bookworm (systemd 252); image building needs 254+.
    with pytest.raises(BuildError, match=r"too old.*ToolsTree=default"):
        require_tool(None, "systemd-repart", minimum_version=254)


def test_the_cached_tree_is_reused_and_tools_tree_path_works(
    built: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, tree = built

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached tools tree was built again")

    monkeypatch.setattr("imagebuild.pipeline.pipeline.build_image", no_build)
    conf = write_config(tmp_path / "conf", CONFIG)
    _, images = load(["-C", str(conf), "build"])
    assert tools_tree_for(images[-1]) == tree
    by_path = write_config(tmp_path / "bypath", CONFIG.replace("ToolsTree=default", f"ToolsTree={tree}"))
    _, images = load(["-C", str(by_path), "build"])
    assert tools_tree_for(images[-1]) == tree
