"""The install cache's key, its entries (complete or not) and pruning, without building anything."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from imagebuild.config import load
from imagebuild.context import Context
from imagebuild.installers.apt_get import AptWorkspace
from imagebuild.pipeline import install_cache
from tests.helpers import write_config

CONF = "[Distribution]\nDistribution=debian\nRelease=trixie\n[Content]\nPackages=systemd\n"


def context(tmp_path: Path, text: str = CONF, *argv: str, release: str = "InRelease v1") -> Context:
    write_config(tmp_path / "conf", text)
    _, images = load(["-C", str(tmp_path / "conf"), f"--package-cache-dir={tmp_path}/cache", *argv, "build"])
    workspace = tmp_path / "ws"
    (workspace / "root").mkdir(parents=True, exist_ok=True)
    ctx = Context(images[-1], workspace, tmp_path / "cache")
    if str(ctx.config.distribution) != "debian":
        return ctx
    lists = AptWorkspace.of(ctx, install_cache.distribution_for(ctx.config).apt_setup(ctx)).lists  # type: ignore[attr-defined]
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "deb.debian.org_debian_dists_trixie_InRelease").write_text(release)
    # The package indexes themselves are covered by the checksums in the Release files.
    (lists / "deb.debian.org_debian_dists_trixie_main_binary-amd64_Packages").write_text(f"{os.urandom(8)!r}")
    return ctx


def entry(tmp_path: Path, *argv: str, text: str = CONF, release: str = "InRelease v1") -> install_cache.Entry:
    found = install_cache.entry_for(context(tmp_path, text, *argv, release=release))
    assert found is not None
    return found


def test_key_follows_packages_and_repository_metadata_only(tmp_path: Path) -> None:
    first = entry(tmp_path)
    assert first.path.parent == tmp_path / "cache/installed"
    assert first.path.name.startswith("debian~trixie~x86-64-")
    assert entry(tmp_path) == first
    # Later stages' inputs do not change the key.
    (tmp_path / "conf/mkosi.extra").mkdir()
    (tmp_path / "conf/mkosi.extra/file").write_text("x")
    assert entry(tmp_path, "--hostname=other") == first
    # A new package version in the archive, another package list, another mirror do.
    assert entry(tmp_path, release="InRelease v2") != first
    assert entry(tmp_path, "--package=udev") != first
    assert entry(tmp_path, "--mirror=http://mirror.example/debian") != first
    (tmp_path / "conf/mkosi.prepare").write_text("#!/bin/sh\n")
    assert entry(tmp_path) != first


def test_no_install_cache_and_distributions_without_a_metadata_digest(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    ctx.install_cache = False
    assert install_cache.entry_for(ctx) is None
    setting = tmp_path / "setting"
    setting.mkdir()
    assert install_cache.entry_for(context(setting, CONF + "\n[Host]\nInstallCache=no\n")) is None
    assert install_cache.entry_for(context(setting)) is not None  # the same without the setting
    other = tmp_path / "fedora"
    other.mkdir()
    assert install_cache.entry_for(context(other, "[Distribution]\nDistribution=fedora\nRelease=40\n")) is None


def test_only_complete_entries_are_used(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    found = install_cache.entry_for(ctx)
    assert found is not None
    # A build that was killed while writing left only a temporary and an entry without its record.
    (found.path.with_name(found.path.name + ".tmp-1-2") / "root").mkdir(parents=True)
    (found.root / "usr").mkdir(parents=True)
    assert not install_cache.restore(ctx, found)
    assert not (ctx.root / "usr").exists()


def test_save_then_restore_and_a_second_save_keeps_the_first(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    found = install_cache.entry_for(ctx)
    assert found is not None
    (ctx.root / "usr/bin").mkdir(parents=True)
    (ctx.root / "usr/bin/tool").write_text("first")
    install_cache.save(ctx, found)
    assert found.complete() and not list(found.path.parent.glob("*.tmp-*"))
    (ctx.root / "usr/bin/tool").write_text("second")
    install_cache.save(ctx, found)
    assert (found.root / "usr/bin/tool").read_text() == "first"
    other = tmp_path / "other"
    ctx2 = Context(ctx.config, other, ctx.package_cache)
    ctx2.root.mkdir(parents=True)
    assert install_cache.restore(ctx2, found)
    assert (ctx2.root / "usr/bin/tool").read_text() == "first"


def test_pruning_keeps_the_newest_and_entries_in_use(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    (ctx.root / "etc").mkdir()
    saved = []
    for version in range(4):
        # Entries earlier builds stored, the oldest first.
        found = entry(tmp_path, release=f"InRelease v{version}")
        found.root.mkdir(parents=True)
        (found.path / "entry.json").write_text("{}")
        os.utime(found.path / "entry.json", (1000 + version, 1000 + version))
        saved.append(found)
    # v0 is being copied out by another build: it holds the entry's lock.
    with open(saved[0].lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_SH)
        newest = entry(tmp_path, release="InRelease v9")
        install_cache.save(ctx, newest)
    left = sorted(p.name for p in (tmp_path / "cache/installed").iterdir() if p.is_dir())
    assert left == sorted([saved[0].path.name, saved[3].path.name, newest.path.name])
