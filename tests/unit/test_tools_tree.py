"""ToolsTree=: the derived config, the cache key, finding and running tools in a tree, version checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from imagebuild.config import Config, load
from imagebuild.errors import BuildError
from imagebuild.pipeline import subbuilds, support
from imagebuild.tools import run as run_module
from imagebuild.tools import tools_tree as tt


def load_config(directory: Path, *args: str) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    _, images = load(["-C", str(directory), "--distribution=debian", "--release=trixie", *args, "summary"])
    return images[-1]


def make_tree(root: Path, *tools: str) -> Path:
    for name in tools:
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        (root / "usr/bin" / name).write_text("#!/bin/sh\n")
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    return root


def test_default_tree_is_trixie_with_the_tools_packages(tmp_path: Path) -> None:
    spec = tt.tools_tree_spec(load_config(tmp_path / "c", "--tools-tree=default"))
    assert spec["distribution"] == "debian" and spec["release"] == "trixie"
    for package in ("systemd-repart", "systemd-ukify", "systemd-boot-efi", "qemu-system-x86", "ovmf", "swtpm",
                    "mtools", "dosfstools", "erofs-utils", "squashfs-tools", "cryptsetup-bin", "sbsigntool"):
        assert package in spec["packages"]


def test_cache_key_follows_packages_release_and_mirror(tmp_path: Path) -> None:
    base = tt.tools_tree_name(tt.tools_tree_spec(load_config(tmp_path / "a", "--tools-tree=default")))
    same = tt.tools_tree_name(tt.tools_tree_spec(load_config(tmp_path / "b", "--tools-tree=default",
                                                             "--tools-tree-package=jq")))  # jq is a default
    more = tt.tools_tree_name(tt.tools_tree_spec(load_config(tmp_path / "c", "--tools-tree=default",
                                                             "--tools-tree-package=vim")))
    sid = tt.tools_tree_name(tt.tools_tree_spec(load_config(tmp_path / "d", "--tools-tree=default",
                                                            "--tools-tree-release=sid")))
    mirror = tt.tools_tree_name(tt.tools_tree_spec(load_config(tmp_path / "e", "--tools-tree=default",
                                                               "--tools-tree-mirror=http://m.example/debian")))
    assert base == same
    assert len({base, more, sid, mirror}) == 4
    assert sid.startswith("debian-sid-")


def test_unsupported_tools_tree_distribution_is_refused(tmp_path: Path) -> None:
    config = load_config(tmp_path / "c", "--tools-tree=default", "--tools-tree-distribution=arch")
    with pytest.raises(BuildError, match="ToolsTreeDistribution=arch"):
        tt.tools_tree_spec(config)


def test_derived_config_is_a_supported_directory_build(tmp_path: Path) -> None:
    config = load_config(tmp_path / "c", "--tools-tree=default", "--tools-tree-package=vim",
                         "--tools-tree-repository=contrib", f"--package-cache-dir={tmp_path}/pkgs")
    spec = tt.tools_tree_spec(config)
    derived = tt.derived_config(config, spec, tmp_path / "cache", "tree")
    assert str(derived.format) == "directory" and derived.output == "tree"
    assert derived.output_directory == tmp_path / "cache"
    assert derived.tools_tree is None and "vim" in derived.packages
    assert derived.repositories == ["contrib"] and derived.release == "trixie"
    assert derived.package_cache_directory == tmp_path / "pkgs"
    support.check_supported(derived)


def test_default_tree_is_built_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Config] = []

    def fake_build(config: Config, **kw: Any) -> SimpleNamespace:
        built.append(config)
        tree = Path(config.output_directory or "") / config.output
        (tree / "usr/bin").mkdir(parents=True)
        return SimpleNamespace(path=tree)

    monkeypatch.setattr("imagebuild.pipeline.pipeline.build_image", fake_build)
    config = load_config(tmp_path / "c", "--tools-tree=default", f"--cache-dir={tmp_path}/cache")
    first = subbuilds.tools_tree_for(config)
    second = subbuilds.tools_tree_for(config)
    assert first == second and first is not None and first.parent == tmp_path / "cache/tools"
    assert len(built) == 1
    changed = load_config(tmp_path / "c", "--tools-tree=default", f"--cache-dir={tmp_path}/cache",
                          "--tools-tree-package=vim")
    assert subbuilds.tools_tree_for(changed) != first and len(built) == 2


def test_tools_tree_path_and_none(tmp_path: Path) -> None:
    assert tt.tools_tree_for(load_config(tmp_path / "a")) is None
    tree = make_tree(tmp_path / "tree")
    assert tt.tools_tree_for(load_config(tmp_path / "b", f"--tools-tree={tree}")) == tree
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuildError, match="not a tools tree"):
        tt.tools_tree_for(load_config(tmp_path / "c", f"--tools-tree={tmp_path / 'empty'}"))


def test_mkosi_tools_directory_is_picked_up(tmp_path: Path) -> None:
    make_tree(tmp_path / "c" / "mkosi.tools", "systemd-repart")
    config = load_config(tmp_path / "c")
    assert tt.tools_tree_for(config) == (tmp_path / "c" / "mkosi.tools").absolute()


def test_find_tool_in_a_tree(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", "systemd-repart")
    (tree / "usr/sbin").mkdir()
    (tree / "usr/sbin/mkfs.ext4").write_text("")
    assert run_module.find_tool("systemd-repart", tools_tree=tree) == "/usr/bin/systemd-repart"
    assert tt.tool(tree, "mkfs.ext4") == "/usr/sbin/mkfs.ext4"
    with pytest.raises(BuildError, match="ToolsTreePackages="):
        run_module.find_tool("ukify", package="systemd-ukify", tools_tree=tree)


def test_wrapper_mounts_the_tree_usr_and_its_etc_files(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / "etc").mkdir()
    (tree / "etc/ld.so.cache").write_text("")
    argv = run_module.tools_tree_wrapper(tree)
    assert argv[0] == "bwrap" and argv[-1] == "--"
    assert ["--ro-bind", str(tree / "usr"), "/usr"] == argv[argv.index("--ro-bind"):][:3]
    assert str(tree / "etc/ld.so.cache") in argv
    # Not in the tree: not mounted (bwrap would create mount points on the host).
    assert str(tree / "etc/alternatives") not in argv


def test_run_with_a_tree_runs_through_the_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class FakePopen:
        def __init__(self, args: list[str], **kw: Any) -> None:
            seen.append(args)
            self.stdout = iter(["systemd 257 (257.13-1)\n"])
            self.pid = 0

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    tree = make_tree(tmp_path / "tree", "systemd-repart")
    assert run_module.run(["/usr/bin/systemd-repart", "--version"], tools_tree=tree).startswith("systemd 257")
    assert seen[0][0] == "bwrap" and seen[0][-2:] == ["/usr/bin/systemd-repart", "--version"]


@pytest.mark.parametrize(
    ("text", "version"),
    [("systemd 257 (257.13-1~deb13u1)\n+PAM", (257,)), ("QEMU emulator version 10.0.13 (Debian)", (10, 0, 13)),
     ("no digits", None)],
)
def test_parse_version(text: str, version: tuple[int, ...] | None) -> None:
    assert tt.parse_version(text) == version


def test_require_tool_refuses_an_old_host_tool_with_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tt, "find_tool", lambda name, **kw: f"/usr/bin/{name}")
    monkeypatch.setattr(tt, "run", lambda argv, **kw: "systemd 252 (252.36-1~deb12u1)\n")
    tt.tool_version.cache_clear()
    with pytest.raises(BuildError, match=r"systemd-repart 252 on this host is too old.*254.*ToolsTree=default"):
        tt.require_tool(None, "systemd-repart", minimum_version=254)
    tt.tool_version.cache_clear()
    monkeypatch.setattr(tt, "run", lambda argv, **kw: "systemd 257 (257.13)\n")
    assert tt.require_tool(None, "systemd-repart", minimum_version=254) == "/usr/bin/systemd-repart"
    tt.tool_version.cache_clear()


def test_require_tool_missing_on_host_suggests_a_tools_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BuildError, match=r"ukify.*ToolsTree=default"):
        tt.require_tool(None, "ukify", package="systemd-ukify")


def test_workspace_sets_the_contexts_tools_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagebuild.context import Workspace

    tree = make_tree(tmp_path / "tree")
    config = load_config(tmp_path / "c", f"--tools-tree={tree}", f"--workspace-dir={tmp_path}/ws")
    with Workspace(config) as context:
        assert context.tools_tree == tree


def test_package_manager_trees_reach_the_derived_config_and_the_key(tmp_path: Path) -> None:
    tree = tmp_path / "pm"
    (tree / "etc/apt/preferences.d").mkdir(parents=True)
    pin = tree / "etc/apt/preferences.d/pin"
    pin.write_text("Package: strace\nPin: release *\nPin-Priority: -1\n")
    without = tt.tools_tree_spec(load_config(tmp_path / "a", "--tools-tree=default"))
    config = load_config(tmp_path / "b", "--tools-tree=default", f"--tools-tree-package-manager-tree={tree}")
    spec = tt.tools_tree_spec(config)
    # Without the setting the tree keeps the name it had before the setting was acted on.
    assert "package_manager_trees" not in without
    assert tt.tools_tree_name(spec) != tt.tools_tree_name(without)
    derived = tt.derived_config(config, spec, tmp_path / "cache", "tree")
    assert [t.source for t in derived.package_manager_trees] == [tree]
    # The content counts: another pin builds another tree.
    pin.write_text("Package: jq\nPin: release *\nPin-Priority: -1\n")
    assert tt.tools_tree_name(tt.tools_tree_spec(config)) != tt.tools_tree_name(spec)
