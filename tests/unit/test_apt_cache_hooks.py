"""The mmdebstrap hooks that carry the package cache into the image root and back out."""

from __future__ import annotations

import subprocess
from pathlib import Path

from imagebuild.installers.apt import cache_hooks


def run_hook(option: str, root: Path) -> None:
    script = option.split("=", 1)[1]
    subprocess.run(["sh", "-c", script, "hook", str(root)], check=True)


def test_cache_round_trip(tmp_path: Path) -> None:
    archives, lists = tmp_path / "cache/archives", tmp_path / "cache/lists"
    archives.mkdir(parents=True)
    (archives / "old_1.0_amd64.deb").write_text("old")
    options = cache_hooks(archives, lists, tmp_path)
    setup = next(o for o in options if o.startswith("--setup-hook="))
    save = next(o for o in options if o.startswith("--customize-hook="))
    root = tmp_path / "root"
    root.mkdir()
    run_hook(setup, root)
    assert (root / "var/cache/apt/archives/old_1.0_amd64.deb").read_text() == "old"
    # apt downloads a package and refreshes the lists inside the root...
    (root / "var/cache/apt/archives/new_2.0_amd64.deb").write_text("new")
    (root / "var/lib/apt/lists").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/apt/lists/deb.debian.org_dists_trixie_InRelease").write_text("lists")
    (root / "var/lib/apt/lists/lock").write_text("")
    run_hook(save, root)
    # ...and both survive the build, without apt's lock file.
    assert sorted(p.name for p in archives.iterdir()) == ["new_2.0_amd64.deb", "old_1.0_amd64.deb"]
    assert sorted(p.name for p in lists.iterdir()) == ["deb.debian.org_dists_trixie_InRelease"]
    assert "--skip=essential/unlink" in options
