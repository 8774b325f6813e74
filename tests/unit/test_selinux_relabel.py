"""pipeline/selinux.py: which policy the image names, which binary policy is newest, what yes and auto do when
something is missing, and the setfiles command line (the process layer faked)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from imagebuild.config import load
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.pipeline import selinux
from imagebuild.tools.run import CommandError


def _context(tmp_path: Path, value: str) -> Context:
    directory = tmp_path / "conf"
    directory.mkdir(parents=True)
    _, images = load(["-C", str(directory), "-d", "debian", "-r", "trixie", f"--selinux-relabel={value}", "build"])
    tools = tmp_path / "tools"
    (tools / "usr/sbin").mkdir(parents=True)
    (tools / "usr/sbin/setfiles").write_text("")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return Context(images[-1], workspace, tmp_path / "cache", tools)


def _policy(context: Context, config: str = "SELINUX=permissive\nSELINUXTYPE=default\n",
            versions: Sequence[str] = ("33", "34")) -> None:
    base = context.root / "etc/selinux"
    (base / "default/contexts/files").mkdir(parents=True)
    (base / "default/contexts/files/file_contexts").write_text("/etc(/.*)? system_u:object_r:etc_t:s0\n")
    (base / "default/policy").mkdir()
    for version in versions:
        (base / "default/policy" / f"policy.{version}").write_bytes(b"")
    (base / "config").write_text(config)


class FakeRun:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, context: Any, argv: Sequence[Any], **kwargs: Any) -> str:
        self.calls.append([str(a) for a in argv])
        if self.fail:
            raise CommandError("setfiles failed", output="")
        return ""


@pytest.mark.parametrize(("text", "name"), [
    ("SELINUX=enforcing\nSELINUXTYPE=default\n", "default"),
    ("# SELINUXTYPE=mls\nSELINUXTYPE='targeted'  # the usual one\n", "targeted"),
    ("SELINUXTYPE=a\nSELINUXTYPE=b\n", "b"),
    ("SELINUX=disabled\n", ""),
])
def test_policy_name_reads_the_shell_fragment(text: str, name: str, tmp_path: Path) -> None:
    (tmp_path / "config").write_text(text)
    assert selinux.policy_name(tmp_path / "config") == name


def test_the_newest_binary_policy_by_number(tmp_path: Path) -> None:
    for name in ("policy.9", "policy.33", "policy.100", "policy.old", "policy.33.bak"):
        (tmp_path / name).write_bytes(b"")
    assert selinux.newest_binary_policy(tmp_path) == tmp_path / "policy.100"
    assert selinux.newest_binary_policy(tmp_path / "nothing") is None


def test_setfiles_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path, "yes")
    _policy(context)
    fake = FakeRun()
    monkeypatch.setattr(selinux, "run_tool", fake)
    selinux.relabel(context)
    root = str(context.root)
    policy = context.root / "etc/selinux/default"
    assert fake.calls == [["/usr/sbin/setfiles", "-mFr", root, "-c", str(policy / "policy/policy.34"),
                           str(policy / "contexts/files/file_contexts"), root]]


@pytest.mark.parametrize(("config", "versions", "problem"), [
    (None, ("34",), "no /etc/selinux/config"),
    ("SELINUX=permissive\n", ("34",), "names no policy"),
    ("SELINUXTYPE=default\n", (), "no binary policy"),
])
def test_yes_fails_and_auto_skips_when_the_policy_is_incomplete(config: str | None, versions: tuple[str, ...],
                                                                 problem: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun()
    monkeypatch.setattr(selinux, "run_tool", fake)
    for value in ("yes", "auto"):
        context = _context(tmp_path / value, value)
        _policy(context, config or "", versions)
        if config is None:
            (context.root / "etc/selinux/config").unlink()
        if value == "yes":
            with pytest.raises(BuildError, match=f"SELinuxRelabel=yes: .*{problem}.*selinux-policy-default"):
                selinux.relabel(context)
        else:
            selinux.relabel(context)
    assert fake.calls == []


def test_no_never_relabels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path, "no")
    _policy(context)
    fake = FakeRun()
    monkeypatch.setattr(selinux, "run_tool", fake)
    selinux.relabel(context)
    assert fake.calls == []


def test_a_failing_setfiles_fails_yes_and_warns_with_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selinux, "run_tool", FakeRun(fail=True))
    context = _context(tmp_path / "yes", "yes")
    _policy(context)
    with pytest.raises(CommandError):
        selinux.relabel(context)
    context = _context(tmp_path / "auto", "auto")
    _policy(context)
    selinux.relabel(context)
