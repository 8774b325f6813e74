"""Real Debian builds: local packages, versions and globs, package manager trees, CacheOnly= without network,
packages installed into and removed from a finished image, and an arm64 tree run through qemu-user.

One host-architecture build is shared by most checks (module fixture); there is a single arm64 build.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration


def make_deb(directory: Path, name: str, version: str, *, recommends: str = "") -> None:
    """A tiny arch:all package that installs /usr/share/imagebuild-test/<name> holding its version."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pkg"
        (root / "DEBIAN").mkdir(parents=True)
        control = (f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
                   f"Description: imagebuild test package\n")
        if recommends:
            control += f"Recommends: {recommends}\n"
        (root / "DEBIAN/control").write_text(control)
        (root / "usr/share/imagebuild-test").mkdir(parents=True)
        (root / f"usr/share/imagebuild-test/{name}").write_text(version + "\n")
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root),
                        str(directory / f"{name}_{version}_all.deb")], check=True, capture_output=True)


@dataclass
class Build:
    conf: Path
    cache: Path
    tree: Path
    stderr: str

    def args(self, *more: str) -> list[str]:
        return ["-C", str(self.conf), f"--package-cache-dir={self.cache}", *more]


def installed_version(tree: Path, package: str) -> str:
    out = subprocess.run(["dpkg-query", f"--admindir={tree}/var/lib/dpkg", "-W", "-f=${Status} ${Version}",
                          package], capture_output=True, text=True, check=False)
    return out.stdout.removeprefix("install ok installed ").strip() if "ok installed" in out.stdout else ""


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    base = tmp_path_factory.mktemp("debian")
    debs = base / "debs"
    debs.mkdir()
    # Two versions each: the newer one is what apt would take unless told otherwise.
    for version in ("1.0-1", "2.0-1"):
        make_deb(debs, "imagebuild-versioned", version)
        make_deb(debs, "imagebuild-pinned", version)
    make_deb(debs, "imagebuild-glob-a", "1.0-1", recommends="imagebuild-recommended")
    make_deb(debs, "imagebuild-glob-b", "1.0-1")
    make_deb(debs, "imagebuild-recommended", "1.0-1")
    make_deb(debs, "imagebuild-late", "1.0-1")
    tree = base / "pkgmngr"
    (tree / "etc/apt/preferences.d").mkdir(parents=True)
    (tree / "etc/apt/preferences.d/pin").write_text(
        "Package: imagebuild-pinned\nPin: version 1.0-1\nPin-Priority: 1001\n"
    )
    conf = write_config(
        base / "conf",
        "[Distribution]\nDistribution=debian\nRelease=trixie\n"
        f"PackageManagerTrees={tree}\n"
        "[Output]\nFormat=directory\nOutput=image\n"
        "[Content]\nWithRecommends=yes\nWithDocs=no\n"
        f"PackageDirectories={debs}\n"
        "Packages=imagebuild-versioned=1.0-1\n         imagebuild-pinned\n         imagebuild-glob-*\n",
    )
    cache = base / "cache"
    out = base / "out"
    result = imagebuild("-C", str(conf), f"--package-cache-dir={cache}", f"--output-dir={out}", "build")
    assert result.returncode == 0, result.stderr
    return Build(conf, cache, out / "image", result.stderr)


def test_versions_globs_recommends_and_local_packages(build: Build) -> None:
    assert installed_version(build.tree, "imagebuild-versioned") == "1.0-1"
    assert installed_version(build.tree, "imagebuild-glob-a") == "1.0-1"
    assert installed_version(build.tree, "imagebuild-glob-b") == "1.0-1"
    # WithRecommends=yes: glob-a's recommendation came along.
    assert installed_version(build.tree, "imagebuild-recommended") == "1.0-1"
    assert installed_version(build.tree, "imagebuild-late") == ""


def test_package_manager_tree_configures_apt_but_stays_out_of_the_image(build: Build) -> None:
    # Without the pin in the package manager tree apt would have chosen 2.0-1.
    assert installed_version(build.tree, "imagebuild-pinned") == "1.0-1"
    assert not any((build.tree / "etc/apt/preferences.d").glob("*pin*"))
    assert not (build.tree / "etc/apt/apt.conf.d/00imagebuild-build").exists()


def test_image_sources_name_only_the_real_suites(build: Build) -> None:
    assert (build.tree / "etc/apt/sources.list").read_text() == (
        "deb http://deb.debian.org/debian trixie main\n"
        "deb http://deb.debian.org/debian trixie-updates main\n"
        "deb http://deb.debian.org/debian-security trixie-security main\n"
    )
    assert "sync repository metadata took" in build.stderr
    assert any((build.cache / "debian/lists~trixie~amd64").glob("*_InRelease"))


def test_cache_only_build_needs_no_network(build: Build, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # No network at all: a fresh network namespace has only a loopback device that is down.
    result = subprocess.run(
        ["unshare", "--net", *imagebuild_argv(*build.args(f"--output-dir={out}", "--cache-only=always", "build"))],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert installed_version(out / "image", "imagebuild-pinned") == "1.0-1"
    assert "CacheOnly=always: using the cached repository metadata" in result.stderr


def imagebuild_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "imagebuild", *args]


def test_install_and_remove_packages_in_a_finished_image(
    build: Build, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from imagebuild.config import load
    from imagebuild.context import Context
    from imagebuild.distributions import distribution_for

    # CacheOnly=metadata: the cached lists, no refresh, but packages missing from the cache are downloaded.
    _, images = load(build.args("--cache-only=metadata"))
    logger = logging.getLogger("imagebuild")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    config = images[-1]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    context = Context(config, workspace, build.cache)
    subprocess.run(["cp", "-a", "--reflink=auto", str(build.tree), str(context.root)], check=True)
    distribution = distribution_for(config)
    # A package from the archive (downloaded, then kept in the cache) and one from PackageDirectories=.
    distribution.install_packages(context, ["less", "imagebuild-late"])
    assert installed_version(context.root, "less") != ""
    logger.removeHandler(caplog.handler)
    assert "CacheOnly=metadata: using the cached repository metadata" in caplog.text
    assert installed_version(context.root, "imagebuild-late") == "1.0-1"
    assert any((build.cache / "debian/archives").glob("less_*.deb"))
    assert list((context.root / "var/cache/apt/archives").glob("*.deb")) == []
    # The image's dpkg is its own again (the eatmydata wrapper is gone), no service blocker is left.
    assert b"LD_PRELOAD" not in (context.root / "usr/bin/dpkg").read_bytes()
    assert not (context.root / "usr/sbin/policy-rc.d").exists()
    distribution.remove_packages(context, ["less"])
    assert installed_version(context.root, "less") == ""
    assert not (context.root / "usr/bin/less").exists()
    # Nothing stays mounted in the root.
    assert str(context.root) not in Path("/proc/self/mountinfo").read_text()


def test_arm64_tree_runs_through_qemu_user(tmp_path: Path) -> None:
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        pytest.fail("qemu-user binfmt for aarch64 is not registered (packages qemu-user-static, binfmt-support)")
    conf = write_config(
        tmp_path / "conf",
        "[Distribution]\nDistribution=debian\nRelease=trixie\nArchitecture=arm64\n"
        "[Output]\nFormat=directory\nOutput=arm\n",
    )
    out = tmp_path / "out"
    result = imagebuild("-C", str(conf), f"--package-cache-dir={tmp_path}/cache", f"--output-dir={out}", "build")
    assert result.returncode == 0, result.stderr
    tree = out / "arm"
    # An aarch64 ELF (e_machine 0xb7), run on this x86-64 host by the binfmt handler.
    assert (tree / "usr/bin/dash").read_bytes()[18:20] == b"\xb7\x00"
    uname = subprocess.run(["chroot", str(tree), "/usr/bin/uname", "-m"], capture_output=True, text=True, check=True)
    assert uname.stdout.strip() == "aarch64"
    assert installed_version(tree, "dpkg").startswith("1.")
    arch = subprocess.run(["chroot", str(tree), "dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True)
    assert arch.stdout.strip() == "arm64"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_local_mirror_without_key_check(build: Build, tmp_path: Path) -> None:
    """LocalMirror=file:... with RepositoryKeyCheck=no: an unsigned mirror on disk serves the packages."""
    from imagebuild.config import load
    from imagebuild.context import Context
    from imagebuild.distributions import distribution_for

    mirror = tmp_path / "mirror"
    pool = mirror / "pool"
    pool.mkdir(parents=True)
    make_deb(pool, "imagebuild-mirrored", "3.0-1")
    index = mirror / "dists/trixie/main/binary-amd64"
    index.mkdir(parents=True)
    packages = subprocess.run(["dpkg-scanpackages", "pool"], cwd=mirror, capture_output=True, text=True,
                              check=True).stdout
    (index / "Packages").write_text(packages)
    digest = hashlib.sha256(packages.encode()).hexdigest()
    (mirror / "dists/trixie/Release").write_text(
        "Suite: trixie\nCodename: trixie\nComponents: main\nArchitectures: amd64\n"
        f"Date: Thu, 01 Jan 1970 00:00:00 UTC\nSHA256:\n {digest} {len(packages.encode())} main/binary-amd64/Packages\n"
    )
    _, images = load(["-C", str(build.conf), f"--package-cache-dir={tmp_path}/cache",
                      f"--local-mirror=file://{mirror}", "--repository-key-check=no"])
    config = images[-1]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    context = Context(config, workspace, tmp_path / "cache")
    subprocess.run(["cp", "-a", "--reflink=auto", str(build.tree), str(context.root)], check=True)
    distribution_for(config).install_packages(context, ["imagebuild-mirrored"])
    assert installed_version(context.root, "imagebuild-mirrored") == "3.0-1"
    # The image keeps pointing at the real archive.
    assert "file:" not in (context.root / "etc/apt/sources.list").read_text()


def test_concurrent_builds_share_the_package_cache(build: Build, tmp_path: Path) -> None:
    """Two builds of the same suite sync their lists and save packages at once; the cache stays whole."""
    from concurrent.futures import ThreadPoolExecutor

    from imagebuild.config import load
    from imagebuild.context import Context
    from imagebuild.distributions import distribution_for

    _, images = load(build.args())
    config = images[-1]
    distribution = distribution_for(config)

    def one_build(n: int) -> Path:
        workspace = tmp_path / f"ws{n}"
        workspace.mkdir()
        context = Context(config, workspace, build.cache)
        subprocess.run(["cp", "-a", "--reflink=auto", str(build.tree), str(context.root)], check=True)
        distribution.sync_repository_metadata(context)
        distribution.install_packages(context, ["imagebuild-late"])
        return context.root

    with ThreadPoolExecutor(2) as pool:
        roots = list(pool.map(one_build, range(2)))
    for root in roots:
        assert installed_version(root, "imagebuild-late") == "1.0-1"
    lists = build.cache / "debian/lists~trixie~amd64"
    assert any(lists.glob("*_dists_trixie_InRelease")) and not (lists.parent / f"{lists.name}.new").exists()
    assert not any(lists.glob("lock")) and not (lists / "partial").exists()
    assert any((build.cache / "debian/archives").glob("imagebuild-late_1.0-1_all.deb"))
