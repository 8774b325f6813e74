"""The image cache of the plugin: keys, reuse, refresh, pruning, use locks and dependencies.

The builder is replaced by one that writes a small output (these tests are about the cache, not about
building); test_plugin.py and test_matrix.py build real images through the same cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagebuild.config import Config, Overrides
from imagebuild.pipeline.pipeline import BuildResult
from pytest_mkosi import images, root_disks
from pytest_mkosi.images import ImageCache, resolve_configs
from tests.helpers import write_config

CONF = "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=directory\n"


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    done: list[Config] = []

    def build(config: Config, *, force: int = 0) -> BuildResult:
        out = Path(config.output_directory or "")
        out.mkdir(parents=True, exist_ok=True)
        (out / config.output).mkdir()
        (out / config.output / "content").write_bytes(os.urandom(4096 * (len(done) + 1)))
        done.append(config)
        return BuildResult(config, [out / config.output])

    monkeypatch.setattr(images, "build_image", build)
    return done


def config_in(directory: Path, extra: str = "hello\n") -> Config:
    write_config(directory, CONF)
    (directory / "mkosi.extra").mkdir(exist_ok=True)
    (directory / "mkosi.extra" / "file").write_text(extra)
    return resolve_configs(directory, Overrides())[-1]


def test_unchanged_config_is_reused_and_a_content_change_rebuilds(tmp_path: Path, builds: list[Config]) -> None:
    cache = ImageCache(tmp_path / "cache")
    first = cache.get(config_in(tmp_path / "c"))
    again = cache.get(config_in(tmp_path / "c"))
    assert (first.reused, again.reused, len(builds)) == (False, True, 1)
    assert again.path == first.path and (again.path / "content").is_file()
    changed = cache.get(config_in(tmp_path / "c", extra="changed\n"))
    assert not changed.reused and changed.key != first.key and len(builds) == 2


def test_copy_of_the_config_elsewhere_reuses_the_image(tmp_path: Path, builds: list[Config]) -> None:
    cache = ImageCache(tmp_path / "cache")
    first = cache.get(config_in(tmp_path / "here"))
    shutil.copytree(tmp_path / "here", tmp_path / "there")
    moved = cache.get(resolve_configs(tmp_path / "there", Overrides())[-1])
    assert moved.reused and moved.key == first.key and len(builds) == 1


def _age(cache: ImageCache, key: str, seconds: float) -> None:
    meta = Path(f"{cache.entry(key)}.json")
    data = json.loads(meta.read_text())
    data["built_at"] = time.time() - seconds
    meta.write_text(json.dumps(data))


def test_refresh_daily_rebuilds_an_image_older_than_a_day(tmp_path: Path, builds: list[Config]) -> None:
    cache = ImageCache(tmp_path / "cache", refresh="daily")
    first = cache.get(config_in(tmp_path / "c"))
    _age(cache, first.key, 3600)
    hour = cache.get(config_in(tmp_path / "c"))
    assert hour.reused and hour.note == "built 60 min ago"
    _age(cache, first.key, 2.5 * 24 * 3600)
    old = cache.get(config_in(tmp_path / "c"))
    assert not old.reused and len(builds) == 2
    assert old.note == "rebuilt: the cached image was 2.5 days old (--mkosi-refresh=daily)"


def test_refresh_never_and_always(tmp_path: Path, builds: list[Config]) -> None:
    never = ImageCache(tmp_path / "cache", refresh="never")
    first = never.get(config_in(tmp_path / "c"))
    _age(never, first.key, 30 * 24 * 3600)
    assert never.get(config_in(tmp_path / "c")).reused
    never.release_all()
    # always: what was built before this session is rebuilt once; within the session it is reused.
    session = ImageCache(tmp_path / "cache", refresh="always", session_started=time.time())
    rebuilt = session.get(config_in(tmp_path / "c"))
    assert not rebuilt.reused and "(--mkosi-refresh=always)" in rebuilt.note
    worker = ImageCache(tmp_path / "cache", refresh="always", session_started=session.session_started)
    assert worker.get(config_in(tmp_path / "c")).reused
    assert len(builds) == 2


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_SH)
print("held", flush=True)
time.sleep(60)
"""


def hold_elsewhere(entry: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, f"{entry}.use"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_prune_removes_least_recently_used_but_never_what_another_session_uses(
    tmp_path: Path, builds: list[Config]
) -> None:
    cache = ImageCache(tmp_path / "cache")
    made = [cache.get(config_in(tmp_path / f"c{i}", extra=f"{i}\n")) for i in range(4)]
    cache.release_all()
    for i, image in enumerate(made):  # c0 is the least recently used
        os.utime(cache.entry(image.key), (1000 + i, 1000 + i))
    sizes = [images.tree_bytes(cache.entry(m.key)) for m in made]
    holder = hold_elsewhere(cache.entry(made[0].key))
    try:
        removed = cache.prune(sizes[0] + sizes[3])
    finally:
        holder.kill()
        holder.wait()
    # c0 is in use by "another session", so c1 and c2 go; c3 (the most recent) stays.
    assert removed == [cache.entry(made[1].key), cache.entry(made[2].key)]
    assert sorted(p.name for p in cache.entries()) == sorted([made[0].key[:24], made[3].key[:24]])
    assert not Path(f"{cache.entry(made[1].key)}.json").exists()


def test_prune_keeps_what_this_session_holds(tmp_path: Path, builds: list[Config]) -> None:
    cache = ImageCache(tmp_path / "cache")
    image = cache.get(config_in(tmp_path / "c"))
    assert cache.prune(0) == [] and cache.entry(image.key).is_dir()
    cache.release_all()
    assert cache.prune(0) == [cache.entry(image.key)]


def test_a_stale_image_in_use_elsewhere_is_reused_with_a_note(tmp_path: Path, builds: list[Config]) -> None:
    cache = ImageCache(tmp_path / "cache")
    first = cache.get(config_in(tmp_path / "c"))
    cache.release_all()
    _age(cache, first.key, 3 * 24 * 3600)
    holder = hold_elsewhere(cache.entry(first.key))
    try:
        again = ImageCache(tmp_path / "cache").get(config_in(tmp_path / "c"))
    finally:
        holder.kill()
        holder.wait()
    assert again.reused and "another session is using it" in again.note and len(builds) == 1


def test_dependencies_build_first_and_base_trees_see_the_cached_output(tmp_path: Path, builds: list[Config]) -> None:
    top = write_config(tmp_path / "multi", CONF + "OutputDirectory=mkosi.output\n")
    (top / "mkosi.output").mkdir()
    write_config(top / "mkosi.images" / "base", "[Output]\nFormat=directory\n")
    write_config(top / "mkosi.images" / "app", "[Config]\nDependencies=base\n[Content]\nBaseTrees=%O/base\n")
    configs = resolve_configs(top, Overrides())
    assert [c.image for c in configs] == ["base", "app"]
    cache = ImageCache(tmp_path / "cache")
    built = cache.get_all(configs)
    assert list(built) == ["base", "app"]
    # The app was built on the base image as cached, and its key follows the base's.
    assert builds[1].base_trees == [built["base"].path]
    assert built["app"].key != images.config_digest(configs[1])
    again = ImageCache(tmp_path / "cache").get_all(resolve_configs(top, Overrides()))
    assert [i.reused for i in again.values()] == [True, True] and len(builds) == 2


def test_path_of_a_disk_image_is_the_image_file_fresh_and_reused(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def build(config: Config, *, force: int = 0) -> BuildResult:
        # As the pipeline publishes a disk: the image file, and <Output=> as a symlink to it.
        out = Path(config.output_directory or "")
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{config.output}.raw").write_bytes(b"disk")
        (out / config.output).symlink_to(f"{config.output}.raw")
        return BuildResult(config, [out / f"{config.output}.raw", out / config.output])

    monkeypatch.setattr(images, "build_image", build)
    write_config(tmp_path / "c", CONF.replace("Format=directory", "Format=disk"))
    config = resolve_configs(tmp_path / "c", Overrides())[-1]
    cache = ImageCache(tmp_path / "cache")
    fresh = cache.get(config)
    reused = cache.get(config)
    assert not fresh.reused and reused.reused
    assert fresh.path.name == reused.path.name == f"{config.output}.raw"
    # An entry without its record (made before the cache kept one) still hands out the image file.
    Path(f"{cache.entry(fresh.key)}.json").unlink()
    assert cache.get(config).path == fresh.path


def test_the_ext4_root_of_a_cached_tree_is_made_once_and_goes_with_its_entry(
        tmp_path: Path, builds: list[Config], monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []

    def fake_ext4(tree: Path, target: Path, *, minimum_size: int | None, tools_tree: Path | None) -> None:
        made.append(tree)
        target.write_bytes((tree / "content").read_bytes())

    monkeypatch.setattr(root_disks, "tree_to_ext4", fake_ext4)
    cache = ImageCache(tmp_path / "cache", refresh="daily")
    image = cache.get(config_in(tmp_path / "c"))
    disk = root_disks.root_disk(image.path, tools_tree=None)
    assert disk == Path(f"{cache.entry(image.key)}.root.ext4")
    assert disk.read_bytes() == (image.path / "content").read_bytes()
    assert root_disks.root_disk(image.path, tools_tree=None) == disk and made == [image.path]
    # Not an artifact of the image (the reproducibility comparison looks at those).
    assert disk not in image.artifacts and not list(cache.entry(image.key).glob("*.ext4"))
    # A rebuilt entry gets a new one: the old one was made from the tree the build replaced.
    _age(cache, image.key, 2 * 24 * 3600)
    cache.release_all()
    rebuilt = cache.get(config_in(tmp_path / "c"))
    assert not rebuilt.reused and not disk.exists()
    assert root_disks.root_disk(rebuilt.path, tools_tree=None) == disk and len(made) == 2
    assert disk.read_bytes() == (rebuilt.path / "content").read_bytes()
    # Pruning removes it with the entry.
    cache.release_all()
    assert cache.prune(0) == [cache.entry(image.key)] and not disk.exists()
    assert not Path(f"{cache.entry(image.key)}.root.lock").exists()
    # Nothing is written beside a tree outside the cache.
    outside = tmp_path / "out" / "image"
    outside.mkdir(parents=True)
    assert root_disks.root_disk(outside, tools_tree=None) is None and list(outside.parent.iterdir()) == [outside]


def test_the_ext4_root_is_on_disk_before_it_gets_its_name(
        tmp_path: Path, builds: list[Config], monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []

    def fake_ext4(tree: Path, target: Path, *, minimum_size: int | None, tools_tree: Path | None) -> None:
        target.write_bytes(b"ext4")

    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def rename(source: str | Path, target: str | Path) -> None:
        events.append(f"rename {source}")
        real_rename(source, target)

    monkeypatch.setattr(root_disks, "tree_to_ext4", fake_ext4)
    image = ImageCache(tmp_path / "cache", refresh="daily").get(config_in(tmp_path / "c"))
    monkeypatch.setattr(root_disks.os, "fsync", fsync)
    monkeypatch.setattr(root_disks.os, "rename", rename)
    disk = root_disks.root_disk(image.path, tools_tree=None)
    assert disk is not None and disk.read_bytes() == b"ext4"
    partial = events[-1].removeprefix("rename ")
    assert events[-2:] == [f"fsync {partial}", f"rename {partial}"], events
