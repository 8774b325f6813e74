"""The cache keys derived from the settings table: a byte-identical copy of a config tree in another
directory has the same keys; a change to the content of any file or tree a setting names gives new ones."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.pipeline import incremental
from imagebuild.pipeline.inputs import config_digest

BASE = "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=directory\n"


def resolve(tree: Path, *args: str) -> Config:
    _, images = load(["-C", str(tree), *args, "build"])
    return images[-1]


def digest(tree: Path, *args: str) -> str:
    return config_digest(resolve(tree, *args))


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def copy_tree(source: Path, target: Path) -> Path:
    # A config tree, not an image root: copytree is fine here (symlinks kept as they are).
    shutil.copytree(source, target, symlinks=True)
    return target


@dataclass(frozen=True)
class PathKind:
    """A path-valued setting: what a tree using it looks like, and the file whose content then changes."""

    name: str
    conf: str  # appended to BASE
    files: dict[str, str]  # relative path -> content
    changed: str  # the file that changes
    mode: int = 0o644

    def make(self, tree: Path) -> Path:
        write(tree / "mkosi.conf", BASE + self.conf)
        for rel, text in self.files.items():
            write(tree / rel, text, self.mode)
        return tree


SCRIPT = "#!/bin/sh\ntrue\n"
KINDS = [
    PathKind("BuildSources", "[Content]\nBuildScripts=build.sh\nBuildSources=src:src\n",
             {"build.sh": SCRIPT, "src/main.c": "int main;\n"}, "src/main.c", 0o755),
    PathKind("BuildSources-default", "[Content]\nBuildScripts=build.sh\n",
             {"build.sh": SCRIPT, "notes/readme": "x\n"}, "notes/readme", 0o755),
    PathKind("RepartDirectories", "", {"mkosi.repart/10-root.conf": "[Partition]\nType=root\n"},
             "mkosi.repart/10-root.conf"),
    PathKind("ExtraTrees", "", {"mkosi.extra/etc/motd": "hi\n"}, "mkosi.extra/etc/motd"),
    PathKind("ExtraTrees-target", "[Content]\nExtraTrees=files:/opt/files\n", {"files/a": "1\n"}, "files/a"),
    PathKind("SkeletonTrees", "", {"mkosi.skeleton/etc/issue": "hi\n"}, "mkosi.skeleton/etc/issue"),
    PathKind("PackageManagerTrees", "[Distribution]\nPackageManagerTrees=pm\n",
             {"pm/etc/apt/apt.conf.d/99x": "x;\n"}, "pm/etc/apt/apt.conf.d/99x"),
    PathKind("PrepareScripts", "", {"mkosi.prepare": SCRIPT}, "mkosi.prepare", 0o755),
    PathKind("BuildScripts", "", {"mkosi.build": SCRIPT}, "mkosi.build", 0o755),
    PathKind("PostInstallationScripts", "", {"mkosi.postinst": SCRIPT}, "mkosi.postinst", 0o755),
    PathKind("FinalizeScripts", "", {"mkosi.finalize": SCRIPT}, "mkosi.finalize", 0o755),
    PathKind("PackageDirectories", "[Content]\nPackageDirectories=pkgs\n", {"pkgs/a.deb": "deb\n"}, "pkgs/a.deb"),
    PathKind("Initrds", "[Content]\nInitrds=initrd.img\n", {"initrd.img": "cpio\n"}, "initrd.img"),
    PathKind("BaseTrees", "[Content]\nBaseTrees=base\n", {"base/etc/os-release": "ID=x\n"}, "base/etc/os-release"),
    PathKind("EnvironmentFiles", "", {"mkosi.env": "A=1\n"}, "mkosi.env"),
    PathKind("InitrdInclude", "[Config]\nInitrdInclude=initrd.conf\n", {"initrd.conf": "[Content]\n"},
             "initrd.conf"),
    PathKind("SecureBootKey", "", {"mkosi.key": "KEY\n"}, "mkosi.key", 0o600),
    PathKind("SecureBootCertificate", "", {"mkosi.crt": "CRT\n"}, "mkosi.crt"),
    PathKind("VerityKey", "[Validation]\nVerityKey=verity.key\n", {"verity.key": "KEY\n"}, "verity.key", 0o600),
    PathKind("VerityCertificate", "[Validation]\nVerityCertificate=verity.crt\n", {"verity.crt": "C\n"},
             "verity.crt"),
    PathKind("Passphrase", "", {"mkosi.passphrase": "secret\n"}, "mkosi.passphrase", 0o600),
    PathKind("ImageVersion", "", {"mkosi.version": "1.0\n"}, "mkosi.version"),
    PathKind("ToolsTree", "[Host]\nToolsTree=tools\n", {"tools/usr/bin/tool": "1\n"}, "tools/usr/bin/tool"),
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_copy_elsewhere_has_the_same_key(kind: PathKind, tmp_path: Path) -> None:
    tree = kind.make(tmp_path / "here" / "conf")
    key = digest(tree)
    copy = copy_tree(tree, tmp_path / "somewhere" / "else" / "conf")
    assert digest(copy) == key


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_content_change_gives_a_new_key(kind: PathKind, tmp_path: Path) -> None:
    tree = kind.make(tmp_path / "conf")
    key = digest(tree)
    changed = tree / kind.changed
    changed.write_text(changed.read_text() + "changed\n")
    assert digest(tree) != key


def test_an_absolute_path_outside_the_tree_is_hashed_by_content(tmp_path: Path) -> None:
    outside = write(tmp_path / "shared/etc/file", "1\n").parent.parent
    tree = write(tmp_path / "a/conf/mkosi.conf", BASE + f"[Content]\nExtraTrees={outside}\n").parent
    key = digest(tree)
    assert digest(copy_tree(tree, tmp_path / "b/conf")) == key
    (outside / "etc/file").write_text("2\n")
    assert digest(tree) != key


def test_the_same_content_at_another_outside_path_is_another_input(tmp_path: Path) -> None:
    # Outside the tree a path keeps its name: a different directory is a different input.
    for name in ("one", "two"):
        write(tmp_path / name / "file", "same\n")
    tree = write(tmp_path / "conf/mkosi.conf", BASE).parent
    assert digest(tree, f"--extra-tree={tmp_path}/one") != digest(tree, f"--extra-tree={tmp_path}/two")


@pytest.mark.parametrize("option", ["--output-dir", "--cache-dir", "--workspace-dir", "--package-cache-dir",
                                    "--build-dir"])
def test_places_the_build_writes_into_are_not_in_the_key(option: str, tmp_path: Path) -> None:
    tree = write(tmp_path / "conf/mkosi.conf", BASE + "[Content]\nBuildScripts=build.sh\n").parent
    write(tree / "build.sh", SCRIPT, 0o755)
    (tmp_path / "place").mkdir()
    assert digest(tree) == digest(tree, f"{option}={tmp_path}/place")


def test_debug_options_are_not_in_the_key(tmp_path: Path) -> None:
    tree = write(tmp_path / "conf/mkosi.conf", BASE).parent
    assert digest(tree) == digest(tree, "--debug")


def test_run_time_settings_are_not_in_the_key(tmp_path: Path) -> None:
    tree = write(tmp_path / "conf/mkosi.conf", BASE).parent
    assert digest(tree) == digest(tree, "--qemu-mem=4G", "--qemu-gui=yes", "--runtime-size=8G",
                                  "--kernel-command-line-extra=quiet")


def test_outputs_and_caches_inside_the_build_sources_are_skipped(tmp_path: Path) -> None:
    # BuildSources= default to the whole tree; what the build writes below it must not change the key.
    tree = write(tmp_path / "conf/mkosi.conf", BASE + "[Content]\nBuildScripts=build.sh\n").parent
    write(tree / "build.sh", SCRIPT, 0o755)
    for place in ("mkosi.output", "mkosi.cache", "mkosi.builddir"):
        (tree / place).mkdir()
    key = digest(tree)
    for place in ("mkosi.output", "mkosi.cache", "mkosi.builddir"):
        write(tree / place / "image.raw", "built\n")
    assert digest(tree) == key


def test_build_sources_are_no_input_without_scripts(tmp_path: Path) -> None:
    tree = write(tmp_path / "conf/mkosi.conf", BASE).parent
    key = digest(tree)
    write(tree / "tests/test_boot.py", "def test(): pass\n")
    assert digest(tree) == key


def test_images_of_mkosi_images_are_portable_too(tmp_path: Path) -> None:
    tree = write(tmp_path / "a/conf/mkosi.conf", BASE).parent
    write(tree / "mkosi.images/app/mkosi.conf", "[Content]\nPackages=bash\n")
    write(tree / "mkosi.images/app/mkosi.extra/etc/app", "1\n")
    write(tree / "mkosi.extra/etc/shared", "1\n")
    key = digest(tree)
    copy = copy_tree(tree, tmp_path / "b/conf")
    assert digest(copy) == key
    (copy / "mkosi.extra/etc/shared").write_text("2\n")
    assert digest(copy) != key


# ---- Incremental='s key: the INSTALL settings of the table ------------------------------------------------


def cache_key(tree: Path, *args: str) -> str:
    return incremental.cache_key(resolve(tree, "--incremental=yes", *args))


def incremental_tree(tmp_path: Path, conf: str = "") -> Path:
    tree = write(tmp_path / "conf/mkosi.conf", BASE + conf).parent
    (tree / "mkosi.cache").mkdir()
    write(tree / "mkosi.skeleton/etc/issue", "1\n")
    write(tree / "mkosi.extra/etc/motd", "1\n")
    return tree


def test_incremental_key_of_a_copy_elsewhere_is_the_same(tmp_path: Path) -> None:
    tree = incremental_tree(tmp_path / "a", "[Content]\nPrepareScripts=prepare.sh\n")
    write(tree / "prepare.sh", SCRIPT, 0o755)
    assert cache_key(copy_tree(tree, tmp_path / "b/deeper/conf")) == cache_key(tree)


@pytest.mark.parametrize(("change", "invalidates"), [
    (lambda tree: (tree / "mkosi.skeleton/etc/issue").write_text("2\n"), True),
    (lambda tree: (tree / "mkosi.extra/etc/motd").write_text("2\n"), False),
    (lambda tree: write(tree / "src/main.c", "changed\n"), False),
], ids=["skeleton", "extra", "sources"])
def test_incremental_key_follows_what_the_install_reads(change: Callable[[Path], object], invalidates: bool,
                                                        tmp_path: Path) -> None:
    tree = incremental_tree(tmp_path, "[Content]\nBuildScripts=build.sh\n")
    write(tree / "build.sh", SCRIPT, 0o755)
    key, image_key = cache_key(tree), digest(tree)
    change(tree)
    assert (cache_key(tree) != key) == invalidates
    assert digest(tree) != image_key


def test_build_sources_invalidate_the_incremental_cache_only_with_prepare_scripts(tmp_path: Path) -> None:
    tree = incremental_tree(tmp_path, "[Content]\nPrepareScripts=prepare.sh\n")
    write(tree / "prepare.sh", SCRIPT, 0o755)
    key = cache_key(tree)
    write(tree / "src/main.c", "changed\n")
    assert cache_key(tree) != key
