"""The mmdebstrap and apt-get command lines and apt configuration a Debian build produces (process layer faked)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from imagebuild.config.enums import CacheOnly
from imagebuild.distributions.debian import apt_setup
from imagebuild.errors import BuildError
from imagebuild.installers import apt, apt_get
from imagebuild.installers.apt_local import local_repository


def make_context(tmp_path: Path, **settings: Any) -> Any:
    values: dict[str, Any] = dict(
        release="trixie", mirror=None, local_mirror=None, repositories=[], architecture="x86-64",
        repository_key_check=True, package_directories=[], with_recommends=False, cache_only=CacheOnly.none,
        with_docs=True, source_date_epoch=None, packages=[],
    )
    values.update(settings)
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    return SimpleNamespace(
        config=SimpleNamespace(**values), workspace=workspace, package_cache=tmp_path / "cache",
        root=workspace / "root", packages_dir=workspace / "packages",
    )


class FakeRun:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str | os.PathLike[str]], **kw: Any) -> str:
        args = [os.fspath(a) for a in argv]
        self.calls.append(args)
        if args[0] == "sh":
            # Cache scripts (copying, locking) run for real: they only touch tmp_path.
            subprocess.run(args, check=True)
        return ""


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    fake = FakeRun()
    for module in ("imagebuild.installers.apt", "imagebuild.installers.apt_get", "imagebuild.installers.apt_cache"):
        monkeypatch.setattr(f"{module}.run", fake)
    monkeypatch.setattr("imagebuild.installers.apt.find_tool", lambda name, package=None: f"/usr/bin/{name}")
    monkeypatch.setattr("imagebuild.installers.apt_get.find_tool", lambda name, package=None: f"/usr/bin/{name}")
    return fake


def test_build_and_image_sources_with_local_mirror_and_no_key_check(tmp_path: Path) -> None:
    setup = apt_setup(make_context(tmp_path, local_mirror="file:///srv/mirror", mirror="http://m.example/debian",
                                   repository_key_check=False))
    assert setup.build_sources() == ["deb [trusted=yes] copy:///srv/mirror trixie main"]
    # The image is configured with Mirror=, as if LocalMirror= had not been there.
    assert setup.image_sources() == [
        "deb http://m.example/debian trixie main",
        "deb http://m.example/debian trixie-updates main",
        "deb http://m.example/debian-security trixie-security main",
    ]


def test_package_directories_become_a_flat_local_repository(tmp_path: Path) -> None:
    debs = tmp_path / "debs"
    (debs / "pkg/DEBIAN").mkdir(parents=True)
    (debs / "pkg/DEBIAN/control").write_text(
        "Package: local-thing\nVersion: 2.0-1\nArchitecture: all\nMaintainer: x <x@example.org>\nDescription: x\n"
    )
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(debs / "pkg"), str(debs / "local-thing.deb")],
                   check=True, capture_output=True)
    context = make_context(tmp_path, package_directories=[debs], release="sid")
    setup = apt_setup(context)
    local = context.workspace / "apt/local"
    assert setup.build_sources() == [
        "deb http://deb.debian.org/debian sid main",
        f"deb [trusted=yes] copy:{local} ./",
    ]
    assert "Package: local-thing\nVersion: 2.0-1" in (local / "Packages").read_text()
    assert " Packages\n" in (local / "Release").read_text()
    # The image never points at the workspace.
    assert all("copy:" not in line for line in setup.image_sources())


def test_build_scripts_packages_join_the_local_repository(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    assert all("copy:" not in line for line in apt_setup(context).build_sources())
    context.packages_dir.mkdir()
    (context.packages_dir / "pkg/DEBIAN").mkdir(parents=True)
    (context.packages_dir / "pkg/DEBIAN/control").write_text(
        "Package: built-thing\nVersion: 1\nArchitecture: all\nMaintainer: x <x@example.org>\nDescription: x\n"
    )
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(context.packages_dir / "pkg"),
                    str(context.packages_dir / "built-thing.deb")], check=True, capture_output=True)
    assert apt_setup(context).build_sources()[-1] == f"deb [trusted=yes] copy:{context.workspace}/apt/local ./"
    assert "Package: built-thing" in (context.workspace / "apt/local/Packages").read_text()


def test_missing_package_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"PackageDirectories=.*/nope: no such directory"):
        local_repository(tmp_path / "repo", [tmp_path / "nope"], setting="PackageDirectories")


def test_mmdebstrap_command_line(tmp_path: Path, fake_run: FakeRun, monkeypatch: pytest.MonkeyPatch) -> None:
    context = make_context(tmp_path, architecture="arm64", with_recommends=True, with_docs=False,
                           source_date_epoch=0, repositories=["non-free-firmware"])
    setup = apt_setup(context)
    monkeypatch.setattr(apt, "check_foreign_architecture", lambda architecture: None)
    apt.bootstrap(context, setup, packages=["systemd", "less=668-1", "libpcre2-*"], lists=tmp_path / "lists")
    argv = next(c for c in fake_run.calls if c[0].endswith("mmdebstrap"))
    assert argv[:8] == [
        "/usr/bin/mmdebstrap", "--mode=root", "--verbose", "--variant=essential", "--architectures=arm64",
        "--format=directory", "--skip=check/empty", "--skip=update",
    ]
    assert "--include=systemd,less=668-1,libpcre2-*" in argv
    assert 'APT::Install-Recommends "true"' in " ".join(argv)
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in argv
    # No eatmydata for a foreign architecture: the host's library cannot serve an arm64 dpkg;
    # dpkg's unsafe-io instead, for the build only.
    assert not any("eatmydata" in a for a in argv)
    assert any(a.startswith("--setup-hook=") and "force-unsafe-io" in a for a in argv)
    assert any(a.startswith("--customize-hook=rm -f") and "00imagebuild-unsafe-io" in a for a in argv)
    assert argv[-5:] == [
        "trixie", str(context.root),
        "deb http://deb.debian.org/debian trixie main non-free-firmware",
        "deb http://deb.debian.org/debian trixie-updates main non-free-firmware",
        "deb http://deb.debian.org/debian-security trixie-security main non-free-firmware",
    ]
    # The synced lists go into the root before apt reads them; the image gets its own sources.list.
    assert any(a.startswith("--setup-hook=") and str(tmp_path / "lists") in a for a in argv)
    assert any(a.startswith("--customize-hook=") and "/etc/apt/sources.list" in a for a in argv)


def test_cache_only_always_forbids_downloads_while_building(tmp_path: Path) -> None:
    setup = apt_setup(make_context(tmp_path, cache_only=CacheOnly.always))
    assert 'APT::Get::Download "false";' in apt.build_apt_options(setup)
    assert not any("Download" in o for o in apt.build_apt_options(apt_setup(make_context(tmp_path))))


def test_apt_config_for_an_installed_root(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    setup = apt_setup(context)
    work = apt_get.AptWorkspace.of(context, setup)
    config = apt_get.apt_config(setup, work, root=context.root, package_manager_tree=None, keyring=None)
    assert f'DPkg::Chroot-Directory "{context.root}";' in config
    assert f'Dir::State::Status "{context.root}/var/lib/dpkg/status";' in config
    # apt's own state stays in the workspace, out of the image.
    assert f'Dir::State::Lists "{work.lists}";' in config
    assert f'Dir::Etc::SourceList "{work.sources_list}";' in config
    assert 'Apt::Architecture "amd64";' in config


def test_metadata_only_cache_without_lists_is_a_clear_error(tmp_path: Path, fake_run: FakeRun) -> None:
    context = make_context(tmp_path, cache_only=CacheOnly.metadata)
    with pytest.raises(BuildError, match=r"CacheOnly=metadata: the package cache .* has no repository metadata"):
        apt_get.sync_lists(context, apt_setup(context))
    assert not any(c[0].endswith("apt-get") for c in fake_run.calls)


def test_sync_updates_and_saves_lists(tmp_path: Path, fake_run: FakeRun) -> None:
    context = make_context(tmp_path)
    setup = apt_setup(context)
    lists = apt_get.sync_lists(context, setup)
    assert ["/usr/bin/apt-get", "update"] in fake_run.calls
    assert lists == apt_get.AptWorkspace.of(context, setup).lists
    assert apt_get.AptWorkspace.of(context, setup).synced


def test_install_and_remove_run_apt_get_in_the_root(tmp_path: Path, fake_run: FakeRun) -> None:
    context = make_context(tmp_path)
    (context.root / "var/lib/dpkg").mkdir(parents=True)
    (context.root / "var/lib/dpkg/status").write_text("")
    setup = apt_setup(context)
    apt_get.install(context, setup, context.root, ["less=668-1", "libpcre2-*"])
    install = next(c for c in fake_run.calls if "install" in c)
    # In a private mount namespace (for /dev, /proc, /sys in the root), then the host's apt-get.
    assert install[0].endswith("unshare") and "--mount" in install
    assert install[-7:] == ["sh", "/usr/bin/apt-get", "--yes", "install", "--", "less=668-1", "libpcre2-*"]
    apt_get.remove(context, setup, context.root, ["less"])
    assert fake_run.calls[-1][-5:] == ["/usr/bin/apt-get", "--yes", "purge", "--", "less"]
    # No service may start while packages are installed, and nothing of that stays behind.
    assert not (context.root / "usr/sbin/policy-rc.d").exists()


def test_install_needs_an_installed_root(tmp_path: Path, fake_run: FakeRun) -> None:
    context = make_context(tmp_path)
    with pytest.raises(BuildError, match="no dpkg database"):
        apt_get.install(context, apt_setup(context), context.root, ["less"])


def test_package_manager_tree_files_are_in_the_root_only_while_apt_runs(tmp_path: Path) -> None:
    tree = tmp_path / "pkgmngr"
    (tree / "etc/apt/preferences.d").mkdir(parents=True)
    (tree / "etc/apt/preferences.d/pin").write_text("Package: x\nPin: version 1\nPin-Priority: 1001\n")
    (tree / "etc/apt/sources.list.d").mkdir(parents=True)
    (tree / "etc/apt/sources.list.d/extra.list").write_text("deb http://example.org/ x main\n")
    options = apt.package_manager_tree_hooks(tree)
    root = tmp_path / "root"
    root.mkdir()
    for option in options:
        if option.startswith("--setup-hook="):
            subprocess.run(["sh", "-c", option.split("=", 1)[1], "hook", str(root)], check=True)
    assert (root / "etc/apt/preferences.d/imagebuild-pin").read_text().startswith("Package: x")
    assert (root / "etc/apt/sources.list.d/imagebuild-extra.list").exists()
    for option in options:
        if option.startswith("--customize-hook="):
            subprocess.run(["sh", "-c", option.split("=", 1)[1], "hook", str(root)], check=True)
    assert list((root / "etc/apt/preferences.d").iterdir()) == []
    assert list((root / "etc/apt/sources.list.d").iterdir()) == []
    assert apt.package_manager_tree_hooks(None) == []


def test_apt_get_reads_the_package_manager_tree(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    tree = tmp_path / "pkgmngr"
    (tree / "etc/apt/apt.conf.d").mkdir(parents=True)
    setup = apt_setup(context)
    work = apt_get.AptWorkspace.of(context, setup)
    config = apt_get.apt_config(setup, work, root=None, package_manager_tree=tree, keyring=tmp_path / "keys")
    assert f'Dir::Etc::Parts "{tree}/etc/apt/apt.conf.d";' in config
    # Parts the tree lacks come from an empty directory, never from the host's /etc/apt.
    assert f'Dir::Etc::SourceParts "{work.directory}/empty";' in config
    assert f'Dir::Etc::TrustedParts "{tmp_path}/keys";' in config
    assert "Chroot-Directory" not in config


def test_keyring_merges_host_keys_and_the_trees_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "debian.asc").write_text("host key")
    monkeypatch.setattr(apt, "HOST_TRUSTED_PARTS", host)
    tree = tmp_path / "pkgmngr"
    assert apt.keyring_directory(tree, tmp_path / "ws") is None
    (tree / "etc/apt/trusted.gpg.d").mkdir(parents=True)
    (tree / "etc/apt/trusted.gpg.d/extra.asc").write_text("extra key")
    merged = apt.keyring_directory(tree, tmp_path / "ws")
    assert merged is not None
    assert sorted(p.name for p in merged.iterdir()) == ["debian.asc", "extra.asc"]


def test_expired_metadata_says_what_to_do(tmp_path: Path) -> None:
    setup = apt_setup(make_context(tmp_path, release="sid"))
    output = ("E: Release file for http://deb.debian.org/debian/dists/sid/InRelease is expired "
              "(invalid since 17d 6h 33min 13s). Updates for this repository will not be applied.\n")
    error = apt_get.expired_metadata_error(output, setup)
    assert error is not None
    assert "debian sid expired 17d 6h 33min 13s ago" in str(error)
    assert "Acquire::Check-Valid-Until" in str(error) and "PackageManagerTrees=" in str(error)
    assert apt_get.expired_metadata_error("E: something else", setup) is None


def test_apt_failures_become_one_line_errors(tmp_path: Path) -> None:
    setup = apt_setup(make_context(tmp_path, cache_only=CacheOnly.always))
    output = "E: Unable to locate package nope\nE: Version '9.9' for 'less' was not found\n"
    error = apt.missing_packages_error(output, setup, "Packages=")
    assert error is not None and str(error).startswith("Packages=: no package (or version) less, nope in debian trixie")
    uncached = apt.uncached_error("E: Unable to fetch some archives, maybe run apt-get update\n", setup)
    assert uncached is not None and "CacheOnly=always" in str(uncached)
    assert apt.uncached_error("E: Unable to fetch some archives\n", apt_setup(make_context(tmp_path))) is None


def run_customize_hook(option: str, root: Path) -> None:
    assert option.startswith("--customize-hook=")
    subprocess.run(["sh", "-c", option.removeprefix("--customize-hook="), "sh", str(root)], check=True)


def test_the_hosts_hostname_and_resolv_conf_do_not_stay_in_the_image(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc/hostname").write_text("buildhost\n")
    (host / "etc/resolv.conf").write_text("nameserver 192.0.2.1\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (hook,) = apt.host_copies_hook(root, host)
    # What mmdebstrap's setup does (copies of the host's), then a package's own resolv.conf symlink.
    (root / "etc/hostname").write_text("buildhost\n")
    (root / "etc/resolv.conf").symlink_to("../run/systemd/resolve/stub-resolv.conf")
    run_customize_hook(hook, root)
    assert not (root / "etc/hostname").exists()
    assert (root / "etc/resolv.conf").is_symlink()
    # A plain copy of the host's resolv.conf goes too; a file a package changed stays.
    (root / "etc/resolv.conf").unlink()
    (root / "etc/resolv.conf").write_text("nameserver 192.0.2.1\n")
    (root / "etc/hostname").write_text("written-by-a-package\n")
    run_customize_hook(hook, root)
    assert not (root / "etc/resolv.conf").exists()
    assert (root / "etc/hostname").read_text() == "written-by-a-package\n"


def test_skeleton_hostname_and_resolv_conf_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("from-the-skeleton\n")
    (hook,) = apt.host_copies_hook(root, tmp_path)
    assert "etc/hostname" not in hook and "etc/resolv.conf" in hook
    (root / "etc/resolv.conf").write_text("x\n")
    assert apt.host_copies_hook(root, tmp_path) == []


def test_mmdebstrap_removes_its_copies_of_host_files(tmp_path: Path, fake_run: FakeRun,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    context = make_context(tmp_path)
    apt.bootstrap(context, apt_setup(context), packages=["systemd"], lists=tmp_path / "lists")
    argv = next(c for c in fake_run.calls if c[0].endswith("mmdebstrap"))
    assert any(a.startswith("--customize-hook=") and "/etc/hostname" in a and "cmp -s" in a for a in argv)
