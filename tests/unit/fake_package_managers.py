"""A host whose package managers only record how they were called: for the distribution and installer tests.

The tools are empty executables on a private PATH, so the real find_tool() decides what is there (and
words the error for what is not); run() is replaced in the installer modules by a recorder.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.config.enums import Architecture, Distribution
from imagebuild.config.host import HostFacts, set_host
from imagebuild.context import Context
from imagebuild.tools.run import CommandError

HOST = HostFacts(Distribution.debian, "bookworm", Architecture.x86_64, "252")
# The modules that run package managers (common.run_package_manager runs install and remove for all three).
INSTALLER_MODULES = ("common", "dnf")


@dataclass
class Run:
    argv: list[str]
    env: dict[str, str]

    def after(self, word: str) -> list[str]:
        """The arguments after `word` (the verb), e.g. the package list."""
        return self.argv[self.argv.index(word) + 1:]


@dataclass
class FakeHost:
    bin: Path
    runs: list[Run] = field(default_factory=list)
    # Called with each argv before it "succeeds"; may change the tree or raise.
    effect: Callable[[list[str]], None] | None = None
    # When set, every run fails with this output.
    failure: str | None = None

    def provide(self, *tools: str) -> None:
        for tool in tools:
            path = self.bin / tool
            path.write_text("#!/bin/sh\nexit 0\n")
            path.chmod(0o755)

    def remove(self, *tools: str) -> None:
        for tool in tools:
            (self.bin / tool).unlink(missing_ok=True)

    def run(self, argv: list[str], *, what: str | None = None, env: dict[str, str] | None = None,
            **_: object) -> str:
        args = [str(a) for a in argv]
        self.runs.append(Run(args, dict(env or {})))
        if self.failure is not None:
            raise CommandError(f"{what} failed with exit status 1", output=self.failure)
        if self.effect is not None:
            self.effect(args)
        return ""


def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    """For a fixture: Debian bookworm on x86-64 with bwrap, dnf, zypper and pacman, no distribution-gpg-keys."""
    set_host(HOST)
    bin_dir = tmp_path / "host-bin"
    bin_dir.mkdir()
    host = FakeHost(bin_dir)
    host.provide("bwrap", "dnf", "zypper", "pacman")
    monkeypatch.setenv("PATH", str(bin_dir))
    for name in INSTALLER_MODULES:
        monkeypatch.setattr(f"imagebuild.installers.{name}.run", host.run)
    keys = tmp_path / "distribution-gpg-keys"
    keys.mkdir()
    monkeypatch.setattr("imagebuild.installers.rpm.GPG_KEYS_DIR", keys)
    # pacman's host keyring, present unless a test removes it.
    gpgdir = tmp_path / "pacman-gnupg"
    gpgdir.mkdir()
    monkeypatch.setattr("imagebuild.installers.pacman.HOST_GPGDIR", gpgdir)
    yield host
    set_host(None)


def make_config(directory: Path, text: str, *argv: str) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mkosi.conf").write_text(textwrap.dedent(text).lstrip("\n"))
    _, images = load(["-C", str(directory), *argv, "summary"])
    return images[-1]


def make_context(tmp_path: Path, text: str, *argv: str) -> Context:
    config = make_config(tmp_path / "conf", text, *argv)
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return Context(config, workspace, tmp_path / "package-cache")


def repo_sections(text: str) -> dict[str, dict[str, str]]:
    """The [sections] of a .repo file as dictionaries (continuation lines joined with spaces)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    last = ""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif line.startswith(" ") and current is not None:
            current[last] += " " + line.strip()
        elif current is not None:
            last, _, value = line.partition("=")
            current[last.strip()] = value.strip()
    return sections
