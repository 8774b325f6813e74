"""Fixtures for the configuration tests: a fixed host, and a helper that writes configuration trees."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.config.enums import Architecture, Distribution
from imagebuild.config.host import HostFacts, set_host

HOST = HostFacts(Distribution.debian, "bookworm", Architecture.x86_64, "252")


@pytest.fixture(autouse=True)
def fixed_host() -> Iterator[HostFacts]:
    """Every test sees the same host: Debian bookworm on x86-64 with systemd 252."""
    set_host(HOST)
    yield HOST
    set_host(None)


class Tree:
    """A configuration directory under construction."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, relative: str, text: str = "", mode: int | None = None) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        if mode is not None:
            path.chmod(mode)
        return path

    def mkdir(self, relative: str) -> Path:
        path = self.root / relative
        path.mkdir(parents=True, exist_ok=True)
        return path

    def load(self, *argv: str) -> list[Config]:
        _, images = load(["-C", str(self.root), *argv, "summary"])
        return images

    def one(self, *argv: str) -> Config:
        images = self.load(*argv)
        assert len(images) == 1
        return images[0]


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    root = tmp_path / "project"
    root.mkdir()
    return Tree(root)
