"""RemovePackages=, RemoveFiles= and CleanPackageMetadata=."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.config.enums import ConfigFeature
from imagebuild.context import Context
from imagebuild.pipeline import cleanup


def make_context(tmp_path: Path, text: str) -> Context:
    directory = tmp_path / "conf"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\nRelease=trixie\n" + text)
    _, images = load(["-C", str(directory), "summary"])
    config: Config = images[-1]
    context = Context(config, tmp_path / "ws", tmp_path / "cache")
    context.root.mkdir(parents=True)
    return context


def touch(root: Path, *relative: str) -> None:
    for name in relative:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def program(root: Path, name: str) -> None:
    touch(root, f"usr/bin/{name}")
    (root / "usr/bin" / name).chmod(0o755)


def test_remove_files_globs_relative_to_the_image(tmp_path: Path) -> None:
    context = make_context(tmp_path, "[Content]\nRemoveFiles=/usr/share/doc/*,etc/motd,**/*.pyc\n")
    root = context.root
    touch(root, "usr/share/doc/a/copyright", "usr/share/doc/b", "etc/motd", "etc/keep",
          "usr/lib/python3/x/__pycache__/m.pyc", "usr/lib/python3/x/m.py")
    cleanup.remove_files(context)
    assert sorted(p.name for p in (root / "usr/share/doc").iterdir()) == []
    assert not (root / "etc/motd").exists() and (root / "etc/keep").exists()
    assert not (root / "usr/lib/python3/x/__pycache__/m.pyc").exists()
    assert (root / "usr/lib/python3/x/m.py").exists()


def test_remove_files_never_reaches_outside_the_image(tmp_path: Path) -> None:
    context = make_context(tmp_path, "[Content]\nRemoveFiles=/danger/*,/danger\n")
    outside = tmp_path / "host-files"
    touch(outside, "victim")
    # An absolute symlink in the image points into the image, whatever the host has at that path.
    (context.root / "var").mkdir()
    (context.root / "var/run").symlink_to(str(outside))
    (context.root / "danger").symlink_to(str(outside))
    cleanup.remove_files(context)
    assert (outside / "victim").exists()
    # The symlink itself matched /danger and is gone; what it points to is untouched.
    assert not (context.root / "danger").is_symlink()


def test_remove_files_of_the_whole_root_is_ignored(tmp_path: Path) -> None:
    context = make_context(tmp_path, "[Content]\nRemoveFiles=/\n")
    touch(context.root, "etc/keep")
    cleanup.remove_files(context)
    assert (context.root / "etc/keep").exists()


def test_clean_metadata_auto_keeps_what_a_present_package_manager_needs(tmp_path: Path) -> None:
    root = tmp_path
    program(root, "dpkg")
    touch(root, "var/lib/dpkg/status", "var/lib/apt/lists/x", "var/cache/apt/pkgcache.bin", "var/lib/rpm/db")
    removed = {str(p.relative_to(root)) for p in cleanup.metadata_to_clean(root, ConfigFeature.auto)}
    # dpkg is still there (its database stays); apt is gone, so its lists and caches go.
    assert removed == {"var/lib/apt", "var/cache/apt", "var/lib/rpm"}
    everything = {str(p.relative_to(root)) for p in cleanup.metadata_to_clean(root, ConfigFeature.enabled)}
    assert everything == {"var/lib/dpkg", "var/lib/apt", "var/cache/apt", "var/lib/rpm"}
    assert cleanup.metadata_to_clean(root, ConfigFeature.disabled) == []


def test_clean_package_metadata_removes_the_directories(tmp_path: Path) -> None:
    context = make_context(tmp_path, "[Content]\nCleanPackageMetadata=yes\n")
    touch(context.root, "var/lib/dpkg/status", "var/lib/apt/lists/x", "var/lib/other/keep")
    cleanup.clean_package_metadata(context)
    assert not (context.root / "var/lib/dpkg").exists() and not (context.root / "var/lib/apt").exists()
    assert (context.root / "var/lib/other/keep").exists()


class FakeDistribution:
    def __init__(self) -> None:
        self.removed: list[list[str]] = []

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        self.removed.append(packages)


def test_remove_packages_goes_through_the_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDistribution()
    monkeypatch.setattr(cleanup, "distribution_for", lambda config: fake)
    context = make_context(tmp_path, "[Content]\nRemovePackages=less,vim-tiny\n")
    cleanup.remove_packages(context)
    assert fake.removed == [["less", "vim-tiny"]]


def test_remove_packages_is_skipped_with_clean_package_metadata_no(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeDistribution()
    monkeypatch.setattr(cleanup, "distribution_for", lambda config: fake)
    context = make_context(tmp_path, "[Content]\nRemovePackages=less\nCleanPackageMetadata=no\n")
    cleanup.remove_packages(context)
    assert fake.removed == []
    assert "CleanPackageMetadata=no" in caplog.text
