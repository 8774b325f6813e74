"""The package cache: hooks that carry .debs into a root and back out, lists saved whole, and the lock."""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

from imagebuild.installers.apt import cache_hooks
from imagebuild.installers.apt_cache import PackageCache, link_archives, restore_lists, save_archives, save_lists


def run_hook(option: str, root: Path) -> None:
    script = option.split("=", 1)[1]
    subprocess.run(["sh", "-c", script, "hook", str(root)], check=True)


def test_cache_round_trip(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "cache/debian")
    cache.archives.mkdir(parents=True)
    (cache.archives / "old_1.0_amd64.deb").write_text("old")
    options = cache_hooks(cache, tmp_path)
    setup = next(o for o in options if o.startswith("--setup-hook="))
    save = next(o for o in options if o.startswith("--customize-hook="))
    root = tmp_path / "root"
    root.mkdir()
    run_hook(setup, root)
    assert (root / "var/cache/apt/archives/old_1.0_amd64.deb").read_text() == "old"
    # apt downloads a package inside the root...
    (root / "var/cache/apt/archives/new_2.0_amd64.deb").write_text("new")
    run_hook(save, root)
    # ...and it survives the build.
    assert sorted(p.name for p in cache.archives.iterdir()) == ["new_2.0_amd64.deb", "old_1.0_amd64.deb"]
    assert "--skip=essential/unlink" in options


def test_lists_are_replaced_whole_without_lock_files(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "cache/debian")
    synced = tmp_path / "synced"
    (synced / "partial").mkdir(parents=True)
    (synced / "deb.debian.org_dists_trixie_InRelease").write_text("new")
    (synced / "lock").write_text("")
    old = cache.lists("trixie", "amd64")
    old.mkdir(parents=True)
    (old / "gone.example_dists_trixie_InRelease").write_text("old")
    save_lists(cache, "trixie", "amd64", synced)
    assert sorted(p.name for p in old.iterdir()) == ["deb.debian.org_dists_trixie_InRelease"]
    restored = tmp_path / "restored"
    assert restore_lists(cache, "trixie", "amd64", restored)
    assert (restored / "deb.debian.org_dists_trixie_InRelease").read_text() == "new"
    assert not restore_lists(cache, "sid", "amd64", tmp_path / "none")


def test_saving_waits_for_the_lock_of_another_build(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "cache/debian")
    cache.prepare()
    root = tmp_path / "root"
    (root / "var/cache/apt/archives").mkdir(parents=True)
    (root / "var/cache/apt/archives/pkg_1_amd64.deb").write_text("deb")
    # Another build holds the lock for a moment: the copy must not happen before it lets go.
    holder = subprocess.Popen(["flock", str(cache.lock), "sleep", "1"])
    time.sleep(0.2)
    start = time.monotonic()
    save_archives(cache, root)
    holder.wait()
    assert time.monotonic() - start >= 0.5
    assert (cache.archives / "pkg_1_amd64.deb").read_text() == "deb"
    # The root's archive directory is emptied: the image keeps no .debs.
    assert list((root / "var/cache/apt/archives").iterdir()) == []
    with cache.lock.open() as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_only_debs_are_shared_between_builds(tmp_path: Path) -> None:
    """apt's archives/lock and partial/ stay each build's own: shared, two builds at once block each other."""
    cache = PackageCache(tmp_path / "cache/debian")
    options = cache_hooks(cache, tmp_path)
    setup = next(o for o in options if o.startswith("--setup-hook="))
    save = next(o for o in options if o.startswith("--customize-hook="))
    first = tmp_path / "first"
    archives = first / "var/cache/apt/archives"
    (archives / "partial").mkdir(parents=True)
    (archives / "lock").write_text("")
    (archives / "partial/half_1_amd64.deb").write_text("half")
    (archives / "pkg_1_amd64.deb").write_text("deb")
    run_hook(save, first)
    assert sorted(p.name for p in cache.archives.iterdir()) == ["pkg_1_amd64.deb"]
    # A cache that older versions filled with apt's lock still lends only its .debs.
    (cache.archives / "lock").write_text("")
    (cache.archives / "partial").mkdir()
    second = tmp_path / "second"
    second.mkdir()
    run_hook(setup, second)
    assert sorted(p.name for p in (second / "var/cache/apt/archives").iterdir()) == ["pkg_1_amd64.deb"]
    (tmp_path / "third").mkdir()
    link_archives(cache, tmp_path / "third")
    assert sorted(p.name for p in (tmp_path / "third/var/cache/apt/archives").iterdir()) == ["pkg_1_amd64.deb"]
