"""The dnf distributions (Fedora, CentOS and its rebuilds, RHEL, Mageia, OpenMandriva): the generated .repo
files and dnf command lines, with a host whose dnf only records how it was called."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.context import Context
from imagebuild.distributions import distribution_for, fedora
from imagebuild.errors import BuildError
from tests.unit.fake_package_managers import FakeHost, Run, fake_host, make_context, repo_sections


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    yield from fake_host(tmp_path, monkeypatch)


def build(tmp_path: Path, text: str, *argv: str) -> Context:
    context = make_context(tmp_path, text, *argv)
    distribution_for(context.config).install(context)
    return context


def repos(context: Context) -> dict[str, dict[str, str]]:
    return repo_sections((context.workspace / "pkgmngr/etc/yum.repos.d/imagebuild.repo").read_text())


def enabled(context: Context) -> list[str]:
    return [name for name, section in repos(context).items() if section["enabled"] == "1"]


def dnf_runs(host: FakeHost) -> list[Run]:
    return [r for r in host.runs if any(a.endswith("/dnf") or a.endswith("/dnf5") for a in r.argv)]


def option(run: Run, name: str) -> str:
    values = [a[len(name) + 1:] for a in run.argv if a.startswith(f"{name}=")]
    assert len(values) == 1, (name, run.argv)
    return values[0]


FEDORA = "[Distribution]\nDistribution=fedora\n"


def test_fedora_default_release_installs_filesystem_then_packages(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, FEDORA + "[Content]\nPackages=systemd\n  bash\n")
    first, second = dnf_runs(host)
    # filesystem alone first, without the API file systems; then Packages= inside bwrap with /dev and /proc.
    assert first.argv[0].endswith("/dnf") and first.after("install") == ["filesystem"]
    assert second.argv[0].endswith("/bwrap") and second.after("install") == ["bash", "systemd"]
    assert ["--proc", str(context.root / "proc")] == second.argv[second.argv.index("--proc"):][:2]
    assert option(first, "--releasever") == "39"
    assert option(first, "--installroot") == str(context.root)
    assert option(first, "--setopt=cachedir") == str(tmp_path / "package-cache/fedora")
    assert option(first, "--setopt=reposdir") == str(context.workspace / "pkgmngr/etc/yum.repos.d")
    assert option(first, "--config") == str(context.workspace / "pkgmngr/etc/dnf/dnf.conf")
    assert "--setopt=keepcache=1" in first.argv
    # Native build, default settings: no --forcearch, no --nogpgcheck, documentation installed.
    assert not any(a.startswith(("--forcearch", "--nogpgcheck", "--nodocs", "--enablerepo")) for a in first.argv)
    assert first.env["KERNEL_INSTALL_BYPASS"] == "1"


def test_fedora_repositories_from_metalinks(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, FEDORA)
    sections = repos(context)
    assert enabled(context) == ["fedora", "updates"]
    assert sections["fedora"]["metalink"] == (
        "https://mirrors.fedoraproject.org/metalink?arch=$basearch&repo=fedora-$releasever")
    assert sections["updates"]["metalink"].endswith("&repo=updates-released-f$releasever")
    assert sections["updates-testing"]["metalink"].endswith("&repo=updates-testing-f$releasever")
    assert sections["fedora"]["gpgkey"] == "https://fedoraproject.org/fedora.gpg"
    assert sections["fedora"]["gpgcheck"] == "1"
    assert {"fedora-debuginfo", "fedora-source", "updates-debuginfo", "updates-testing-source"} <= set(sections)


def test_fedora_rawhide_has_no_updates(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, FEDORA + "Release=rawhide\n")
    assert not any(name.startswith("updates") for name in repos(context))
    assert option(dnf_runs(host)[0], "--releasever") == "rawhide"


def test_fedora_mirror(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, FEDORA + "Release=40\nMirror=https://mirror.example/fedora/linux/\n")
    sections = repos(context)
    assert sections["fedora"]["baseurl"] == (
        "https://mirror.example/fedora/linux/releases/$releasever/Everything/$basearch/os")
    assert sections["updates"]["baseurl"] == "https://mirror.example/fedora/linux/updates/$releasever/Everything/$basearch"
    rawhide = build(tmp_path / "rawhide", FEDORA + "Release=rawhide\nMirror=https://mirror.example/fedora/linux\n")
    assert repos(rawhide)["fedora"]["baseurl"].startswith("https://mirror.example/fedora/linux/development/")


def test_fedora_local_mirror_is_the_only_repository(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, FEDORA + "Mirror=https://mirror.example\nLocalMirror=file:///srv/repo\n")
    assert list(repos(context)) == ["fedora"]
    assert repos(context)["fedora"]["baseurl"] == "file:///srv/repo"


def test_fedora_eln(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, FEDORA + "Release=eln\n")
    assert enabled(context) == ["appstream", "baseos", "extras", "crb"]
    assert repos(context)["baseos"]["baseurl"].endswith("latest-Fedora-ELN/compose/BaseOS/$basearch/os")


def test_repository_key_check_no_and_repositories(tmp_path: Path, host: FakeHost) -> None:
    build(tmp_path, FEDORA + "RepositoryKeyCheck=no\nRepositories=updates-testing\n")
    run = dnf_runs(host)[0]
    assert "--nogpgcheck" in run.argv
    assert "--enablerepo=updates-testing" in run.argv


def test_unknown_repository_is_refused(tmp_path: Path, host: FakeHost) -> None:
    with pytest.raises(BuildError, match=r"Repositories=nope: no such repository for Fedora Linux 39.*updates-testing"):
        build(tmp_path, FEDORA + "Repositories=nope\n")
    assert host.runs == []


def test_repository_from_package_manager_tree_can_be_enabled(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, FEDORA + "Repositories=mine\n")
    own = context.workspace / "pkgmngr/etc/yum.repos.d/mine.repo"
    own.parent.mkdir(parents=True)
    own.write_text("[mine]\nbaseurl=file:///srv/mine\n")
    conf = context.workspace / "pkgmngr/etc/dnf/dnf.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[main]\nmy_option=1\n")
    distribution_for(context.config).install(context)
    assert "--enablerepo=mine" in dnf_runs(host)[0].argv
    # The user's dnf.conf is kept, ours not written over it.
    assert conf.read_text() == "[main]\nmy_option=1\n"


@pytest.mark.parametrize(("architecture", "basearch"), [("arm64", "aarch64"), ("ppc64-le", "ppc64le"),
                                                        ("s390x", "s390x")])
def test_fedora_foreign_architecture(tmp_path: Path, host: FakeHost, architecture: str, basearch: str) -> None:
    host.provide("dnf5")
    build(tmp_path, FEDORA + f"Architecture={architecture}\n")
    run = dnf_runs(host)[0]
    # dnf5 has no --forcearch: dnf builds foreign images.
    assert run.argv[0].endswith("/dnf")
    assert f"--forcearch={basearch}" in run.argv


def test_fedora_with_dnf5(tmp_path: Path, host: FakeHost) -> None:
    host.provide("dnf5")
    context = build(tmp_path, FEDORA + "Repositories=updates-testing\n[Content]\nWithDocs=no\n")
    run = dnf_runs(host)[0]
    assert run.argv[0].endswith("/dnf5")
    assert "--enable-repo=updates-testing" in run.argv and "--no-docs" in run.argv
    assert "--disable-plugin=*" in run.argv
    assert "optional_metadata_types" not in (context.workspace / "pkgmngr/etc/dnf/dnf.conf").read_text()
    old = build(tmp_path / "old", FEDORA + "Release=37\n")
    assert "optional_metadata_types=filelists" in (old.workspace / "pkgmngr/etc/dnf/dnf.conf").read_text()


def test_with_docs_no_uses_nodocs(tmp_path: Path, host: FakeHost) -> None:
    build(tmp_path, FEDORA + "[Content]\nWithDocs=no\n")
    assert "--nodocs" in dnf_runs(host)[0].argv


@pytest.mark.parametrize("release", ["thirty-nine", "39.1", "f39"])
def test_fedora_unknown_release(tmp_path: Path, host: FakeHost, release: str) -> None:
    with pytest.raises(BuildError, match=rf"Release={release} is not a Fedora release"):
        build(tmp_path, FEDORA + f"Release={release}\n")


@pytest.mark.parametrize("distribution", ["fedora", "centos", "alma", "rocky", "rhel-ubi", "mageia",
                                          "openmandriva"])
def test_unknown_architecture(tmp_path: Path, host: FakeHost, distribution: str) -> None:
    with pytest.raises(BuildError, match=r"Architecture=alpha is not an architecture .* builds for"):
        build(tmp_path, f"[Distribution]\nDistribution={distribution}\nArchitecture=alpha\n")
    assert host.runs == []


def test_gpg_key_from_distribution_gpg_keys(tmp_path: Path, host: FakeHost) -> None:
    key = tmp_path / "distribution-gpg-keys/fedora/RPM-GPG-KEY-fedora-39-primary"
    key.parent.mkdir(parents=True)
    key.write_text("key")
    context = build(tmp_path, FEDORA)
    assert repos(context)["fedora"]["gpgkey"] == f"file://{key}"


def test_missing_dnf_names_the_package(tmp_path: Path, host: FakeHost) -> None:
    host.remove("dnf")
    with pytest.raises(BuildError, match=r"the tool 'dnf' was not found on this host .*Debian package 'dnf'"):
        build(tmp_path, FEDORA)


def test_missing_bwrap_names_the_package(tmp_path: Path, host: FakeHost) -> None:
    host.remove("bwrap")
    with pytest.raises(BuildError, match=r"'bwrap'.*'bubblewrap'"):
        build(tmp_path, FEDORA + "[Content]\nPackages=systemd\n")


def test_missing_package_is_a_one_line_error(tmp_path: Path, host: FakeHost) -> None:
    host.failure = "Last metadata expiration check: 0:00:01 ago\nNo match for argument: no-such-thing\nError: ..."
    with pytest.raises(BuildError, match=r"^Packages=: no package named no-such-thing in Fedora Linux 39 \(x86_64\)"):
        build(tmp_path, FEDORA)


def test_base_trees_skip_the_base_packages(tmp_path: Path, host: FakeHost) -> None:
    base = tmp_path / "base"
    base.mkdir()
    build(tmp_path, FEDORA + f"[Content]\nBaseTrees={base}\nPackages=vim\n")
    assert [r.after("install") for r in dnf_runs(host)] == [["vim"]]


def test_rpm_database_moved_back_from_home(tmp_path: Path, host: FakeHost) -> None:
    def debian_rpm(argv: list[str]) -> None:
        root = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--installroot=")))
        (root / "root/.rpmdb").mkdir(parents=True, exist_ok=True)
        (root / "root/.rpmdb/rpmdb.sqlite").write_text("db")
        (root / "usr/lib/sysimage/rpm").mkdir(parents=True, exist_ok=True)

    host.effect = debian_rpm
    context = build(tmp_path, FEDORA)
    assert (context.root / "usr/lib/sysimage/rpm/rpmdb.sqlite").read_text() == "db"
    assert (context.root / "root/.rpmdb").is_symlink()


def test_install_packages_into_another_root_and_remove(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, FEDORA)
    overlay = tmp_path / "overlay"
    distribution = distribution_for(context.config)
    distribution.install_packages(context, ["gcc"], root=overlay)
    distribution.remove_packages(context, ["vim"])
    install, remove = dnf_runs(host)
    assert option(install, "--installroot") == str(overlay) and install.after("install") == ["gcc"]
    assert option(remove, "--installroot") == str(context.root) and remove.after("remove") == ["vim"]


CENTOS = "[Distribution]\nDistribution=centos\n"


def test_centos_9(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, CENTOS)
    sections = repos(context)
    assert enabled(context) == ["baseos", "appstream", "extras", "crb"]
    assert sections["baseos"]["metalink"] == "https://mirrors.centos.org/metalink?arch=$basearch&repo=centos-baseos-$stream"
    assert sections["extras"]["metalink"].endswith("repo=centos-extras-sig-extras-common-$stream")
    assert sections["baseos"]["gpgkey"] == (
        "https://www.centos.org/keys/RPM-GPG-KEY-CentOS-Official "
        "https://www.centos.org/keys/RPM-GPG-KEY-CentOS-SIG-Extras")
    # EPEL and the Hyperscale SIG are there to be enabled with Repositories=.
    assert sections["epel"]["enabled"] == "0"
    assert sections["epel"]["metalink"].endswith("&repo=epel-$releasever")
    assert sections["epel"]["gpgkey"] == "https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-9"
    assert sections["hyperscale-packages-main"]["metalink"].endswith("repo=centos-hyperscale-sig-packages-main-$stream")
    assert (context.workspace / "pkgmngr/etc/dnf/vars/stream").read_text() == "9-stream\n"
    assert option(dnf_runs(host)[0], "--releasever") == "9"


def test_centos_8_uses_powertools_and_the_mirror_list(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, CENTOS + "Release=8\n")
    assert enabled(context) == ["baseos", "appstream", "extras", "powertools"]
    assert repos(context)["baseos"]["mirrorlist"] == (
        "http://mirrorlist.centos.org/?release=$stream&arch=$basearch&repo=BaseOS")


def test_centos_mirror_and_epel(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, CENTOS + "Mirror=https://mirror.example/centos-stream\nRepositories=epel,epel-next\n")
    sections = repos(context)
    assert sections["baseos"]["baseurl"] == "https://mirror.example/centos-stream/$stream/BaseOS/$basearch/os"
    assert sections["epel"]["baseurl"] == "https://mirror.example/centos-stream/epel/$releasever/Everything/$basearch"
    run = dnf_runs(host)[0]
    assert "--enablerepo=epel" in run.argv and "--enablerepo=epel-next" in run.argv


@pytest.mark.parametrize("release", ["7", "stream", "9.2"])
def test_centos_unknown_release(tmp_path: Path, host: FakeHost, release: str) -> None:
    with pytest.raises(BuildError, match=rf"Release={release}"):
        build(tmp_path, CENTOS + f"Release={release}\n")


def test_centos_rpm_database_in_var_lib(tmp_path: Path, host: FakeHost) -> None:
    def fedora_rpm(argv: list[str]) -> None:
        root = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--installroot=")))
        (root / "usr/lib/sysimage/rpm").mkdir(parents=True, exist_ok=True)
        (root / "usr/lib/sysimage/rpm/rpmdb.sqlite").write_text("db")

    host.effect = fedora_rpm
    context = build(tmp_path, CENTOS)
    assert (context.root / "var/lib/rpm/rpmdb.sqlite").read_text() == "db"
    assert (context.root / "usr/lib/sysimage/rpm").is_symlink()


def test_alma(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, "[Distribution]\nDistribution=alma\nArchitecture=arm64\n")
    sections = repos(context)
    assert enabled(context) == ["BaseOS", "AppStream", "extras", "CRB"]
    assert sections["BaseOS"]["mirrorlist"] == "https://mirrors.almalinux.org/mirrorlist/$releasever/baseos"
    assert sections["BaseOS"]["gpgkey"] == "https://repo.almalinux.org/almalinux/RPM-GPG-KEY-AlmaLinux-9"
    assert "epel" in sections and not any(name.startswith("hyperscale") for name in sections)
    assert "--forcearch=aarch64" in dnf_runs(host)[0].argv
    mirrored = build(tmp_path / "m", "[Distribution]\nDistribution=alma\nRelease=8.9\nMirror=https://m.example/\n")
    assert repos(mirrored)["PowerTools"]["baseurl"] == "https://m.example/almalinux/$releasever/PowerTools/$basearch/os"


def test_rocky(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, "[Distribution]\nDistribution=rocky\n")
    sections = repos(context)
    assert sections["AppStream"]["mirrorlist"] == (
        "https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=AppStream-$releasever")
    assert sections["AppStream"]["gpgkey"] == "https://download.rockylinux.org/pub/rocky/RPM-GPG-KEY-Rocky-9"
    mirrored = build(tmp_path / "m", "[Distribution]\nDistribution=rocky\nMirror=https://m.example\n")
    assert repos(mirrored)["BaseOS"]["baseurl"] == "https://m.example/rocky/$releasever/BaseOS/$basearch/os"


def test_rhel_needs_an_entitlement_or_a_mirror(tmp_path: Path, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_root = tmp_path / "host-root"
    monkeypatch.setattr("imagebuild.distributions.rhel.HOST_ROOT", fake_root)
    with pytest.raises(BuildError, match=r"subscription-manager, or set Mirror="):
        build(tmp_path, "[Distribution]\nDistribution=rhel\n")
    (fake_root / "etc/rhsm/ca").mkdir(parents=True)
    (fake_root / "etc/rhsm/ca/redhat-uep.pem").write_text("ca")
    (fake_root / "etc/pki/entitlement").mkdir(parents=True)
    (fake_root / "etc/pki/entitlement/123.pem").write_text("cert")
    (fake_root / "etc/pki/entitlement/123-key.pem").write_text("key")
    context = build(tmp_path / "registered", "[Distribution]\nDistribution=rhel\nRelease=9.3\n")
    baseos = repos(context)["rhel-9.3-baseos-rpms"]
    assert baseos["baseurl"] == "https://cdn.redhat.com/content/dist/rhel9/9.3/$basearch/baseos/os"
    assert baseos["sslclientcert"] == str(fake_root / "etc/pki/entitlement/123.pem")
    assert baseos["sslclientkey"] == str(fake_root / "etc/pki/entitlement/123-key.pem")
    assert baseos["gpgkey"] == "https://access.redhat.com/security/data/fd431d51.txt"
    assert enabled(context) == ["rhel-9.3-baseos-rpms", "rhel-9.3-appstream-rpms", "rhel-9.3-codeready-builder-rpms"]
    mirrored = build(tmp_path / "mirror", "[Distribution]\nDistribution=rhel\nMirror=https://m.example/rhel\n")
    assert "sslclientcert" not in repos(mirrored)["rhel-9-baseos-rpms"]


def test_rhel_ubi(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, "[Distribution]\nDistribution=rhel-ubi\nRelease=8\n")
    sections = repos(context)
    assert enabled(context) == ["ubi-8-baseos-rpms", "ubi-8-appstream-rpms", "ubi-8-codeready-builder-rpms"]
    assert sections["ubi-8-baseos-rpms"]["baseurl"] == (
        "https://cdn-ubi.redhat.com/content/public/ubi/dist/ubi8/8/$basearch/baseos/os")
    assert sections["epel"]["gpgkey"].endswith("RPM-GPG-KEY-EPEL-8")


def test_mageia(tmp_path: Path, host: FakeHost) -> None:
    def kernel(argv: list[str]) -> None:
        root = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--installroot=")))
        (root / "boot").mkdir(parents=True, exist_ok=True)
        (root / "boot/vmlinuz-6.6.1").write_text("kernel")
        (root / "usr/lib/modules/6.6.1").mkdir(parents=True, exist_ok=True)

    host.effect = kernel
    context = build(tmp_path, "[Distribution]\nDistribution=mageia\n")
    sections = repos(context)
    assert list(sections) == ["core-release", "core-updates"]
    assert sections["core-release"]["mirrorlist"] == (
        "https://www.mageia.org/mirrorlist/?release=$releasever&arch=$basearch&section=core&repo=release")
    assert option(dnf_runs(host)[0], "--releasever") == "cauldron"
    assert (context.root / "usr/lib/modules/6.6.1/vmlinuz").read_text() == "kernel"
    mirrored = build(tmp_path / "m", "[Distribution]\nDistribution=mageia\nRelease=9\nMirror=https://m.example/mageia\n")
    assert repos(mirrored)["core-updates"]["baseurl"] == (
        "https://m.example/mageia/distrib/$releasever/$basearch/media/core/updates")
    with pytest.raises(BuildError, match=r"Release=nine is not a Mageia release"):
        build(tmp_path / "bad", "[Distribution]\nDistribution=mageia\nRelease=nine\n")


def test_openmandriva(tmp_path: Path, host: FakeHost) -> None:
    context = build(tmp_path, "[Distribution]\nDistribution=openmandriva\nArchitecture=riscv64\n")
    sections = repos(context)
    assert sections["main-release"]["baseurl"] == (
        "http://mirrors.openmandriva.org/$releasever/repository/$basearch/main/release")
    assert sections["main-updates"]["baseurl"].endswith("/main/updates")
    assert option(dnf_runs(host)[0], "--releasever") == "cooker"
    assert "--forcearch=riscv64" in dnf_runs(host)[0].argv
    with pytest.raises(BuildError, match=r"Release=lts is not an OpenMandriva release"):
        build(tmp_path / "bad", "[Distribution]\nDistribution=openmandriva\nRelease=lts\n")


@pytest.mark.parametrize(("cache_only", "expected"), [("always", "--cacheonly"),
                                                      ("metadata", "--setopt=metadata_expire=never")])
def test_cache_only(tmp_path: Path, host: FakeHost, cache_only: str, expected: str) -> None:
    build(tmp_path, FEDORA + f"CacheOnly={cache_only}\n")
    assert expected in dnf_runs(host)[0].argv
    # A local mirror is read as it is.
    host.runs.clear()
    build(tmp_path / "local", FEDORA + f"CacheOnly={cache_only}\nLocalMirror=file:///srv/repo\n")
    assert expected not in dnf_runs(host)[0].argv


def test_sync_repository_metadata_refreshes_unless_cache_only(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, FEDORA)
    fedora.DISTRIBUTION.sync_repository_metadata(context)
    (run,) = dnf_runs(host)
    assert run.argv[-2:] == ["makecache", "--refresh"]
    assert run.env["HOME"] == "/root"
    host.runs.clear()
    cached = make_context(tmp_path / "cached", FEDORA + "CacheOnly=metadata\n")
    fedora.DISTRIBUTION.sync_repository_metadata(cached)
    assert host.runs == []


MATRIX = [
    (distribution, release, architecture, basearch)
    for distribution, releases, architectures in (
        ("fedora", ("39", "40", "rawhide"), {"x86-64": "x86_64", "arm64": "aarch64", "ppc64-le": "ppc64le",
                                             "s390x": "s390x", "riscv64": "riscv64"}),
        ("centos", ("8", "9"), {"x86-64": "x86_64", "arm64": "aarch64", "ppc64-le": "ppc64le", "s390x": "s390x"}),
        ("alma", ("8", "9"), {"x86-64": "x86_64", "arm64": "aarch64"}),
        ("rocky", ("8", "9"), {"x86-64": "x86_64", "arm64": "aarch64"}),
        ("rhel-ubi", ("8", "9"), {"x86-64": "x86_64", "s390x": "s390x"}),
        ("mageia", ("9", "cauldron"), {"x86-64": "x86_64", "arm64": "aarch64"}),
        ("openmandriva", ("5.0", "cooker", "rolling"), {"x86-64": "x86_64", "arm64": "aarch64"}),
    )
    for release in releases
    for architecture, basearch in architectures.items()
]


@pytest.mark.parametrize(("distribution", "release", "architecture", "basearch"), MATRIX)
def test_release_and_architecture_matrix(tmp_path: Path, host: FakeHost, distribution: str, release: str,
                                         architecture: str, basearch: str) -> None:
    context = build(tmp_path, f"[Distribution]\nDistribution={distribution}\nRelease={release}\n"
                              f"Architecture={architecture}\n")
    run = dnf_runs(host)[0]
    assert option(run, "--releasever") == release
    assert option(run, "--setopt=cachedir") == str(tmp_path / "package-cache" / distribution)
    forcearch = [a for a in run.argv if a.startswith("--forcearch=")]
    assert forcearch == ([] if architecture == "x86-64" else [f"--forcearch={basearch}"])
    # Every enabled repository has a source and a key to check it with.
    for name in enabled(context):
        section = repos(context)[name]
        assert {"baseurl", "metalink", "mirrorlist"} & set(section), name
        assert section["gpgkey"], name
