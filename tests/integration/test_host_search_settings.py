"""ExtraSearchPaths= and ToolsTreePackageManagerTrees= with the real tools in real builds.

ExtraSearchPaths=: a wrapper named mmdebstrap in the extra directory is the mmdebstrap the build runs (it
records that and hands over to the host's). ToolsTreePackageManagerTrees=: an apt preference in the tree
that forbids one of the tools tree's packages makes apt refuse to build that tree, which only happens if
the tools tree's apt read it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

CONF = """\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format=directory
ImageId=searched

[Content]
Bootable=no
"""


def test_extra_search_paths_come_before_path(tmp_path: Path) -> None:
    project = write_config(tmp_path / "project", CONF + "\n[Host]\nExtraSearchPaths=wrappers\n")
    marker = tmp_path / "wrapper-ran"
    wrapper = project / "wrappers/mmdebstrap"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\necho \"$PATH\" > {marker}\nexec /usr/bin/mmdebstrap \"$@\"\n")
    wrapper.chmod(0o755)
    # Without the install cache: mmdebstrap must run.
    result = imagebuild("-C", str(project), f"--output-dir={tmp_path}/out", "--no-install-cache", "build",
                        timeout=900)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/searched/usr/bin/dpkg").exists()
    assert marker.read_text().startswith(f"{project / 'wrappers'}:") or \
        f":{project / 'wrappers'}:" in marker.read_text()


def test_tools_tree_package_manager_trees_configure_the_tools_trees_apt(tmp_path: Path) -> None:
    project = write_config(tmp_path / "project", CONF + "\n[Host]\nToolsTree=default\n"
                                                         "ToolsTreePackageManagerTrees=pm\n")
    pin = project / "pm/etc/apt/preferences.d/no-strace"
    pin.parent.mkdir(parents=True)
    pin.write_text("Package: strace\nPin: release *\nPin-Priority: -1\n")
    result = imagebuild("-C", str(project), f"--output-dir={tmp_path}/out", f"--cache-dir={tmp_path}/cache",
                        "build", timeout=900)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Building the tools tree" in result.stderr
    assert "strace" in result.stderr.split("imagebuild: error:", 1)[1]
    # The pinned-out tree was not built, and nothing of it is taken for a tools tree later.
    assert not any((tmp_path / "cache/tools").glob("*/usr"))
