"""openSUSE (zypper), Arch Linux (pacman), Ubuntu (apt), custom, and the module lookup: generated files and
command lines, with a host whose package managers only record how they were called."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.config import Config
from imagebuild.config.enums import Distribution
from imagebuild.context import Context
from imagebuild.distributions import distribution_for, opensuse, ubuntu
from imagebuild.errors import BuildError
from imagebuild.installers import apt, apt_get
from imagebuild.installers.apt import AptSetup
from tests.unit.fake_package_managers import FakeHost, Run, fake_host, make_config, make_context, repo_sections


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    yield from fake_host(tmp_path, monkeypatch)


def build(tmp_path: Path, text: str, *argv: str) -> Context:
    context = make_context(tmp_path, text, *argv)
    distribution_for(context.config).install(context)
    return context


def runs_of(host: FakeHost, tool: str) -> list[Run]:
    return [r for r in host.runs if any(a.endswith(f"/{tool}") for a in r.argv)]


@pytest.mark.parametrize("name", [d.value for d in Distribution])
def test_every_distribution_has_an_implementation(tmp_path: Path, host: FakeHost, name: str) -> None:
    config = make_config(tmp_path, f"[Distribution]\nDistribution={name}\n")
    implementation = distribution_for(config)
    assert implementation.name == name
    for method in ("install", "install_packages", "remove_packages"):
        assert callable(getattr(implementation, method))


# openSUSE

OPENSUSE = "[Distribution]\nDistribution=opensuse\n"


def zypper_repos(context: Context) -> dict[str, dict[str, str]]:
    return repo_sections((context.workspace / "pkgmngr/etc/zypp/repos.d/imagebuild.repo").read_text())


def test_opensuse_tumbleweed_with_zypper(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, OPENSUSE + "[Content]\nPackages=systemd\n")
    first, second = runs_of(host, "zypper")
    pkgmngr = context.workspace / "pkgmngr"
    assert first.argv[:7] == [
        str(host.bin / "zypper"), f"--installroot={context.root}", f"--cache-dir={tmp_path}/package-cache/opensuse",
        f"--reposd-dir={pkgmngr}/etc/zypp/repos.d", "--gpg-auto-import-keys", "--non-interactive", "install",
    ]
    assert first.after("install") == ["--download", "in-advance", "--no-recommends", "filesystem"]
    assert second.argv[0] == str(host.bin / "bwrap") and second.after("install")[-1] == "systemd"
    assert first.env["ZYPP_CONF"] == str(pkgmngr / "etc/zypp/zypp.conf")
    assert "rpm.install.excludedocs = no" in (pkgmngr / "etc/zypp/zypp.conf").read_text()
    repos = zypper_repos(context)
    assert repos["oss"]["baseurl"] == "http://download.opensuse.org/tumbleweed/repo/oss"
    assert repos["oss"]["keeppackages"] == "1"
    assert repos["oss"]["gpgkey"] == "http://download.opensuse.org/tumbleweed/repo/oss/repodata/repomd.xml.key"
    assert repos["oss-update"]["baseurl"] == "http://download.opensuse.org/update/tumbleweed"
    assert [name for name, r in repos.items() if r["enabled"] == "1"] == ["oss", "oss-update"]


def test_opensuse_leap_on_arm64_with_options(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, OPENSUSE + "Release=15.5\nArchitecture=arm64\nMirror=https://m.example/\n"
                    "RepositoryKeyCheck=no\nRepositories=non-oss\n[Content]\nWithRecommends=yes\nWithDocs=no\n")
    repos = zypper_repos(context)
    assert repos["oss"]["baseurl"] == "https://m.example/ports/aarch64/distribution/leap/15.5/repo/oss"
    assert repos["oss-update"]["baseurl"] == "https://m.example/ports/aarch64/update/leap/15.5/oss"
    # zypper cannot enable a repository for one run: Repositories= enables it in the file.
    assert repos["non-oss"]["enabled"] == "1"
    run = runs_of(host, "zypper")[0]
    assert "--no-gpg-checks" in run.argv and "--recommends" in run.argv
    assert "rpm.install.excludedocs = yes" in (context.workspace / "pkgmngr/etc/zypp/zypp.conf").read_text()


def test_opensuse_local_mirror(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, OPENSUSE + "LocalMirror=file:///srv/repo\n")
    assert list(zypper_repos(context)) == ["local-mirror"]


def test_opensuse_falls_back_to_dnf_then_names_zypper(tmp_path: Path, host: FakeHost) -> None:
    host.remove("zypper")
    context = build(tmp_path, OPENSUSE)
    (run,) = runs_of(host, "dnf")
    assert run.after("install") == ["filesystem"]
    assert (context.workspace / "pkgmngr/etc/yum.repos.d/imagebuild.repo").exists()
    host.remove("dnf")
    with pytest.raises(BuildError, match=r"the tool 'zypper' was not found.*'zypper'"):
        build(tmp_path / "none", OPENSUSE)


def test_opensuse_errors(tmp_path: Path, host: FakeHost) -> None:
    with pytest.raises(BuildError, match=r"Release=42 is not an openSUSE release"):
        build(tmp_path / "a", OPENSUSE + "Release=42\n")
    with pytest.raises(BuildError, match=r"Architecture=s390x is not an architecture openSUSE builds for"):
        build(tmp_path / "b", OPENSUSE + "Architecture=s390x\n")
    with pytest.raises(BuildError, match=r"Repositories=contrib: no such repository for openSUSE"):
        build(tmp_path / "c", OPENSUSE + "Repositories=contrib\n")
    host.failure = "Loading repository data...\nPackage 'nosuch' not found.\n"
    with pytest.raises(BuildError, match=r"Packages=: no package named nosuch in openSUSE tumbleweed"):
        build(tmp_path / "d", OPENSUSE)


def test_opensuse_remove(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, OPENSUSE)
    distribution_for(context.config).remove_packages(context, ["vim"])
    assert runs_of(host, "zypper")[0].after("remove") == ["--clean-deps", "vim"]


# Arch Linux

ARCH = "[Distribution]\nDistribution=arch\n"


def pacman_conf(context: Context) -> str:
    return (context.workspace / "pkgmngr/etc/pacman.conf").read_text()


def test_arch_default(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, ARCH + "[Content]\nPackages=systemd\n")
    first, second = runs_of(host, "pacman")
    conf = pacman_conf(context)
    assert "Architecture = x86_64\nSigLevel = Required DatabaseOptional\n" in conf
    assert "[core]\nServer = https://geo.mirror.pkgbuild.com/$repo/os/$arch\n" in conf
    assert conf.index("[core]") < conf.index("[extra]")
    argv = first.argv
    assert argv[argv.index("--root") + 1] == str(context.root)
    assert argv[argv.index("--cachedir") + 1] == str(tmp_path / "package-cache/arch")
    assert argv[argv.index("--config") + 1] == str(context.workspace / "pkgmngr/etc/pacman.conf")
    assert argv[argv.index("--arch") + 1] == "x86_64"
    assert "--logfile=/dev/null" in argv
    assert first.after("--sync") == ["--refresh", "--needed", "--assume-installed", "initramfs", "filesystem"]
    assert second.argv[0] == str(host.bin / "bwrap") and second.after("--sync")[-1] == "systemd"
    assert (context.root / "var/lib/pacman").is_dir()


def test_arch_arm64_testing_repositories_and_no_key_check(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, ARCH + "Architecture=arm64\nRepositories=core-testing,extra-testing\n"
                    "RepositoryKeyCheck=no\n[Content]\nWithDocs=no\n")
    conf = pacman_conf(context)
    assert "Server = http://mirror.archlinuxarm.org/$arch/$repo" in conf
    assert conf.index("[core-testing]") < conf.index("[extra-testing]") < conf.index("[core]")
    assert "SigLevel = Never" in conf and "NoExtract = usr/share/doc/*" in conf
    run = runs_of(host, "pacman")[0]
    assert run.argv[run.argv.index("--arch") + 1] == "aarch64"


def test_arch_mirror_and_local_mirror(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, ARCH + "Mirror=https://m.example/archlinux/\n")
    assert "Server = https://m.example/archlinux/$repo/os/$arch" in pacman_conf(context)
    local = build(tmp_path / "local", ARCH + "LocalMirror=file:///srv/arch\n")
    assert "[extra]" not in pacman_conf(local) and "[core]\nServer = file:///srv/arch" in pacman_conf(local)


def test_arch_errors(tmp_path: Path, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BuildError, match=r"Release=2024.01.01: Arch Linux has only one release, rolling"):
        build(tmp_path / "a", ARCH + "Release=2024.01.01\n")
    with pytest.raises(BuildError, match=r"Architecture=ppc64-le is not an architecture Arch Linux builds for"):
        build(tmp_path / "b", ARCH + "Architecture=ppc64-le\n")
    with pytest.raises(BuildError, match=r"Repositories=multilib: no such Arch Linux repository"):
        build(tmp_path / "c", ARCH + "Repositories=multilib\n")
    monkeypatch.setattr("imagebuild.installers.pacman.HOST_GPGDIR", tmp_path / "no-gnupg")
    with pytest.raises(BuildError, match=r"archlinux-keyring.*pacman-key --init"):
        build(tmp_path / "d", ARCH)
    host.remove("pacman")
    with pytest.raises(BuildError, match=r"'pacman'.*'pacman-package-manager'"):
        build(tmp_path / "e", ARCH)
    assert host.runs == []


def test_arch_missing_package_and_remove(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, ARCH)
    distribution_for(context.config).remove_packages(context, ["vim"])
    assert runs_of(host, "pacman")[0].after("--remove") == ["--nosave", "--recursive", "vim"]
    host.failure = "resolving dependencies...\nerror: target not found: nosuch\n"
    with pytest.raises(BuildError, match=r"Packages=: no package named nosuch in Arch Linux"):
        build(tmp_path / "b", ARCH)


def test_arch_pacman_conf_from_package_manager_tree_is_kept(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, ARCH)
    own = context.workspace / "pkgmngr/etc/pacman.conf"
    own.parent.mkdir(parents=True)
    own.write_text("[options]\n[core]\nServer = file:///mine\n")
    distribution_for(context.config).install(context)
    assert pacman_conf(context) == "[options]\n[core]\nServer = file:///mine\n"


# Ubuntu


def ubuntu_config(tmp_path: Path, text: str = "") -> Config:
    return make_config(tmp_path, "[Distribution]\nDistribution=ubuntu\n" + text)


def test_ubuntu_jammy_repositories(tmp_path: Path, host: FakeHost) -> None:
    config = ubuntu_config(tmp_path, "Release=jammy\n")
    assert config.release == "jammy"
    lines = [r.sources_line() for r in ubuntu.repositories(config, signed_by=ubuntu.KEYRING)]
    signed = "[signed-by=/usr/share/keyrings/ubuntu-archive-keyring.gpg]"
    assert lines == [
        f"deb {signed} http://archive.ubuntu.com/ubuntu jammy main",
        f"deb {signed} http://archive.ubuntu.com/ubuntu jammy-updates main",
        f"deb {signed} http://security.ubuntu.com/ubuntu jammy-security main",
    ]
    assert ubuntu.ubuntu_architecture(config) == "amd64"


def test_ubuntu_noble_has_universe_and_arm64_uses_ports(tmp_path: Path, host: FakeHost) -> None:
    config = ubuntu_config(tmp_path, "Release=noble\nArchitecture=arm64\nRepositories=restricted\n")
    lines = [r.sources_line() for r in ubuntu.repositories(config)]
    assert lines == [
        "deb http://ports.ubuntu.com noble main universe restricted",
        "deb http://ports.ubuntu.com noble-updates main universe restricted",
        "deb http://ports.ubuntu.com noble-security main universe restricted",
    ]
    assert ubuntu.ubuntu_architecture(config) == "arm64"


def test_ubuntu_mirror_and_local_mirror(tmp_path: Path, host: FakeHost) -> None:
    config = ubuntu_config(tmp_path, "Release=jammy\nMirror=http://m.example/ubuntu/\nLocalMirror=file:///srv/ubuntu\n")
    assert [r.sources_line() for r in ubuntu.repositories(config)] == ["deb copy:///srv/ubuntu jammy main"]
    image = [r.sources_line() for r in ubuntu.repositories(config, for_image=True)]
    assert image[0] == "deb http://m.example/ubuntu jammy main"
    # Security updates are never taken from a mirror.
    assert image[2] == "deb http://security.ubuntu.com/ubuntu jammy-security main"


def test_ubuntu_setup_and_errors(tmp_path: Path, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ubuntu, "KEYRING", tmp_path / "missing.gpg")
    context = make_context(tmp_path, "[Distribution]\nDistribution=ubuntu\n")
    with pytest.raises(BuildError, match=r"missing.gpg is missing on this host: install the package 'ubuntu-keyring'"):
        ubuntu.apt_setup(context)
    unchecked = make_context(tmp_path / "u",
                             "[Distribution]\nDistribution=ubuntu\nRelease=jammy\nRepositoryKeyCheck=no\n")
    setup = ubuntu.apt_setup(unchecked)
    assert (setup.distribution, setup.suite, setup.architecture) == ("ubuntu", "jammy", "amd64")
    assert all("trusted=yes" in r.options for r in setup.build_repositories)
    assert not any("trusted=yes" in r.options for r in setup.image_repositories)
    with pytest.raises(BuildError, match=r"Release=bookworm is not an Ubuntu release"):
        ubuntu.apt_setup(make_context(tmp_path / "b", "[Distribution]\nDistribution=ubuntu\nRelease=bookworm\n"))
    with pytest.raises(BuildError, match=r"Architecture=mips64-le is not an architecture Ubuntu builds for"):
        ubuntu.apt_setup(make_context(tmp_path / "c", "[Distribution]\nDistribution=ubuntu\nArchitecture=mips64-le\n"
                                      "RepositoryKeyCheck=no\n"))


def test_ubuntu_installs_through_mmdebstrap(tmp_path: Path, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = tmp_path / "ubuntu-archive-keyring.gpg"
    keyring.write_text("key")
    monkeypatch.setattr(ubuntu, "KEYRING", keyring)
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(apt_get, "sync_lists", lambda context, setup, **kw: calls.append(("sync", setup)))
    monkeypatch.setattr(apt, "bootstrap", lambda context, setup, **kw: calls.append(("bootstrap", kw)))
    context = make_context(tmp_path,
                           "[Distribution]\nDistribution=ubuntu\nRelease=noble\n[Content]\nPackages=systemd\n")
    distribution_for(context.config).install(context)
    (sync, setup), (bootstrap, kw) = calls
    assert (sync, bootstrap) == ("sync", "bootstrap")
    assert isinstance(setup, AptSetup) and setup.distribution == "ubuntu"
    assert setup.build_sources()[0] == f"deb [signed-by={keyring}] http://archive.ubuntu.com/ubuntu noble main universe"
    assert isinstance(kw, dict) and kw["packages"] == ["systemd"]


# custom


def test_custom_installs_nothing_and_refuses_packages(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, "[Distribution]\nDistribution=custom\n")
    assert context.root.is_dir() and host.runs == []
    distribution = distribution_for(context.config)
    distribution.install_packages(context, [])
    with pytest.raises(BuildError, match=r"Packages=vim: Distribution=custom has no package manager.*BaseTrees="):
        build(tmp_path / "p", "[Distribution]\nDistribution=custom\n[Content]\nPackages=vim\n")
    with pytest.raises(BuildError, match=r"BuildPackages=gcc"):
        distribution.install_packages(context, ["gcc"])
    with pytest.raises(BuildError, match=r"RemovePackages=vim"):
        distribution.remove_packages(context, ["vim"])


def test_opensuse_cache_only_does_not_refresh(tmp_path: Path, host: FakeHost) -> None:
    build(tmp_path, OPENSUSE + "CacheOnly=always\n")
    assert "--no-refresh" in runs_of(host, "zypper")[0].argv
    host.runs.clear()
    build(tmp_path / "none", OPENSUSE)
    assert "--no-refresh" not in runs_of(host, "zypper")[0].argv


def test_arch_cache_only_uses_the_databases_of_the_last_refresh(tmp_path: Path, host: FakeHost) -> None:
    with pytest.raises(BuildError, match=r"CacheOnly=always: .* no repository databases.*CacheOnly=none"):
        build(tmp_path / "cold", ARCH + "CacheOnly=always\n")

    def refresh(argv: list[str]) -> None:
        if "--refresh" in argv:
            sync = Path(argv[argv.index("--root") + 1]) / "var/lib/pacman/sync"
            sync.mkdir(parents=True, exist_ok=True)
            (sync / "core.db").write_text("core")

    host.effect = refresh
    build(tmp_path / "warm", ARCH)
    assert (tmp_path / "warm/package-cache/arch/sync/core.db").read_text() == "core"
    host.runs.clear()
    context = make_context(tmp_path / "warm", ARCH + "CacheOnly=always\n")
    (context.root / "var/lib/pacman/sync/core.db").unlink()
    distribution_for(context.config).install(context)
    assert "--refresh" not in runs_of(host, "pacman")[0].argv
    assert (context.root / "var/lib/pacman/sync/core.db").read_text() == "core"


def test_opensuse_sync_and_stray_solver_cache(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, OPENSUSE)
    distribution = opensuse.DISTRIBUTION
    distribution.sync_repository_metadata(context)
    assert runs_of(host, "zypper")[0].argv[-1] == "refresh"

    def solver_cache(argv: list[str]) -> None:
        root = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--installroot=")))
        cache = next(a.split("=", 1)[1] for a in argv if a.startswith("--cache-dir="))
        (root / cache.lstrip("/") / "solv/@System").mkdir(parents=True)
        (root / "var").mkdir(exist_ok=True)

    host.effect = solver_cache
    distribution.install(context)
    # What zypper created at the cache's path is gone, up to the top two levels.
    inside = context.root / str(tmp_path / "package-cache/opensuse").lstrip("/")
    assert not inside.exists()
    assert not any(p.name == "@System" for p in context.root.rglob("*"))
    parts = inside.relative_to(context.root).parts
    assert (context.root / parts[0] / parts[1]).is_dir()
    assert not (context.root / parts[0] / parts[1] / parts[2]).exists()


@pytest.mark.parametrize(("text", "message"), [
    ("Distribution=fedora\nRelease=rawhidee\n", "Release=rawhidee is not a Fedora release"),
    ("Distribution=centos\nArchitecture=riscv64\n", "Architecture=riscv64 is not an architecture CentOS"),
    ("Distribution=opensuse\nRelease=leap\n", "Release=leap is not an openSUSE release"),
    ("Distribution=arch\nRepositories=testing\n", "Repositories=testing: no such Arch Linux repository"),
    ("Distribution=ubuntu\nRelease=trixie\n", "Release=trixie is not an Ubuntu release"),
    ("Distribution=custom\n[Content]\nRemovePackages=vim\n", "RemovePackages=vim: Distribution=custom"),
])
def test_check_refuses_before_any_work(tmp_path: Path, host: FakeHost, text: str, message: str) -> None:
    config = make_config(tmp_path, "[Distribution]\n" + text)
    check = getattr(distribution_for(config), "check")  # noqa: B009 (not part of the protocol yet)
    with pytest.raises(BuildError, match=re.escape(message)):
        check(config)
    assert host.runs == []
