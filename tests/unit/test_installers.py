"""The pieces the dnf, zypper and pacman installers share: .repo files, keys, package order, generated
configuration files, the rpm database location and the API file system wrapper."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.errors import BuildError
from imagebuild.installers.common import (
    GENERATED_MARKER,
    apivfs_prefix,
    package_manager_environment,
    sort_packages,
    write_generated,
)
from imagebuild.installers.rpm import (
    RpmRepository,
    find_gpgkey,
    fixup_rpmdb_location,
    join_mirror,
    repo_file,
    repository_ids,
)
from tests.unit.fake_package_managers import FakeHost, fake_host, make_context, repo_sections


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    yield from fake_host(tmp_path, monkeypatch)


def test_repo_file_sections() -> None:
    text = repo_file([
        RpmRepository("a", "baseurl=https://x/a", ("https://x/key1", "https://x/key2")),
        RpmRepository("b", "metalink=https://x/m?repo=b", (), enabled=False, sslcacert=Path("/ca.pem")),
    ], extra=["keeppackages=1"])
    assert text.startswith("[a]\nname=a\nbaseurl=https://x/a\ngpgcheck=1\nenabled=1\nkeeppackages=1\n"
                           "gpgkey=https://x/key1\n       https://x/key2\n")
    sections = repo_sections(text)
    assert sections["b"] == {"name": "b", "metalink": "https://x/m?repo=b", "gpgcheck": "1", "enabled": "0",
                             "keeppackages": "1", "sslcacert": "/ca.pem"}


def test_repository_ids(tmp_path: Path) -> None:
    (tmp_path / "one.repo").write_text("[one]\nbaseurl=x\n[two-debug]\n")
    (tmp_path / "ignored.conf").write_text("[nope]\n")
    assert repository_ids(tmp_path) == {"one", "two-debug"}
    assert repository_ids(tmp_path / "missing") == set()


def test_join_mirror() -> None:
    assert join_mirror("https://m/", "/a/b") == join_mirror("https://m", "a/b") == "https://m/a/b"


def test_sort_packages_names_then_files() -> None:
    assert sort_packages(["vim", "./local.rpm", "bash", "vim", "/abs/x.rpm"]) == [
        "bash", "vim", "./local.rpm", "/abs/x.rpm"]


def test_write_generated_keeps_a_users_file(tmp_path: Path) -> None:
    ours = tmp_path / "etc/dnf/dnf.conf"
    assert write_generated(ours, "[main]\n")
    assert ours.read_text() == GENERATED_MARKER + "[main]\n"
    # Ours is rewritten; a file without the marker is left alone.
    assert write_generated(ours, "[main]\nx=1\n") and ours.read_text().endswith("x=1\n")
    ours.write_text("[main]\nmine=1\n")
    assert not write_generated(ours, "[main]\n")
    assert ours.read_text() == "[main]\nmine=1\n"


def test_find_gpgkey_prefers_distribution_gpg_keys_then_the_package_manager_tree(
    tmp_path: Path, host: FakeHost
) -> None:
    context = make_context(tmp_path, "[Distribution]\nDistribution=fedora\n")
    assert find_gpgkey(context, "RPM-GPG-KEY-x", "https://k") == "https://k"
    assert find_gpgkey(context, "RPM-GPG-KEY-x", None) is None
    pki = context.workspace / "pkgmngr/etc/pki/rpm-gpg/RPM-GPG-KEY-x"
    pki.parent.mkdir(parents=True)
    pki.write_text("k")
    assert find_gpgkey(context, "RPM-GPG-KEY-x", "https://k") == f"file://{pki}"
    shipped = tmp_path / "distribution-gpg-keys/x/RPM-GPG-KEY-x"
    shipped.parent.mkdir(parents=True)
    shipped.write_text("k")
    assert find_gpgkey(context, "RPM-GPG-KEY-x", "https://k") == f"file://{shipped}"


def test_fixup_rpmdb_location(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "root/.rpmdb").mkdir(parents=True)
    (root / "root/.rpmdb/Packages").write_text("db")
    (root / "var/lib/rpm").mkdir(parents=True)
    (root / "var/lib/rpm/stale").write_text("old")
    fixup_rpmdb_location(root)
    assert sorted(p.name for p in (root / "var/lib/rpm").iterdir()) == ["Packages"]
    assert (root / "root/.rpmdb").resolve() == (root / "var/lib/rpm").resolve()
    # A second call leaves the symlink alone.
    fixup_rpmdb_location(root)
    assert (root / "var/lib/rpm/Packages").read_text() == "db"


def test_apivfs_prefix(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, "[Distribution]\nDistribution=fedora\n")
    root = tmp_path / "tree"
    prefix = apivfs_prefix(context, root)
    assert prefix[0] == str(host.bin / "bwrap") and prefix[-1] == "--"
    assert prefix[prefix.index("--dev") + 1] == str(root / "dev")
    assert prefix[prefix.index("--proc") + 1] == str(root / "proc")
    assert (root / "dev").is_dir() and (root / "proc").is_dir()
    host.remove("bwrap")
    with pytest.raises(BuildError, match=r"bubblewrap"):
        apivfs_prefix(context, root)


def test_package_manager_environment(tmp_path: Path, host: FakeHost) -> None:
    context = make_context(tmp_path, "[Distribution]\nDistribution=fedora\n[Content]\nEnvironment=FOO=bar\n"
                           "SourceDateEpoch=1700000000\n")
    env = package_manager_environment(context.config)
    assert env["FOO"] == "bar" and env["KERNEL_INSTALL_BYPASS"] == "1" and env["SOURCE_DATE_EPOCH"] == "1700000000"
