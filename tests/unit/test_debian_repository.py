"""The "copy package manager trees" and "sync repository metadata" stages."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from imagebuild.config import TreeSpec
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.pipeline import repository


def context(tmp_path: Path, trees: list[TreeSpec]) -> Any:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config: Any = SimpleNamespace(package_manager_trees=trees, distribution="debian")
    return Context(config=config, workspace=workspace, package_cache=tmp_path / "cache")


def test_trees_go_into_the_workspace_not_the_image(tmp_path: Path) -> None:
    source = tmp_path / "tree"
    (source / "etc/apt/apt.conf.d").mkdir(parents=True)
    (source / "etc/apt/apt.conf.d/10proxy").write_text('Acquire::http::Proxy "http://proxy:3128";\n')
    ctx = context(tmp_path, [TreeSpec(source, None), TreeSpec(source, Path("/usr/share/extra"))])
    assert ctx.package_manager_tree() is None
    repository.install_package_manager_trees(ctx)
    tree = ctx.package_manager_tree()
    assert tree == ctx.workspace / "pkgmngr"
    assert (tree / "etc/apt/apt.conf.d/10proxy").exists()
    assert (tree / "usr/share/extra/etc/apt/apt.conf.d/10proxy").exists()
    assert not ctx.root.exists()


def test_missing_tree_is_named(tmp_path: Path) -> None:
    ctx = context(tmp_path, [TreeSpec(tmp_path / "nope", None)])
    with pytest.raises(BuildError, match=r"PackageManagerTrees=.*nope: no such file or directory"):
        repository.install_package_manager_trees(ctx)


def test_sync_asks_the_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Any] = []
    fake = SimpleNamespace(sync_repository_metadata=synced.append)
    monkeypatch.setattr(repository, "distribution_for", lambda config: fake)
    ctx = context(tmp_path, [])
    repository.sync_repository_metadata(ctx)
    assert synced == [ctx]
    # A distribution without repository metadata has nothing to sync.
    monkeypatch.setattr(repository, "distribution_for", lambda config: SimpleNamespace())
    repository.sync_repository_metadata(ctx)
