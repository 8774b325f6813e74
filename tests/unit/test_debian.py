"""Debian's repositories and architecture names, from the config alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from imagebuild.distributions.debian import debian_architecture, repositories
from imagebuild.errors import BuildError


def config(**kw: object) -> SimpleNamespace:
    base = dict(release="trixie", mirror=None, local_mirror=None, repositories=[], architecture="x86-64")
    base.update(kw)
    return SimpleNamespace(**base)


def test_stable_release_has_updates_and_security() -> None:
    lines = [r.sources_line() for r in repositories(config())]  # type: ignore[arg-type]
    assert lines == [
        "deb http://deb.debian.org/debian trixie main",
        "deb http://deb.debian.org/debian trixie-updates main",
        "deb http://deb.debian.org/debian-security trixie-security main",
    ]


@pytest.mark.parametrize("release", ["sid", "unstable", "testing"])
def test_rolling_releases_have_one_suite(release: str) -> None:
    assert [r.suite for r in repositories(config(release=release))] == [release]  # type: ignore[arg-type]


def test_components_and_mirror() -> None:
    repos = repositories(config(mirror="http://mirror.example/debian/", repositories=["non-free-firmware"]))  # type: ignore[arg-type]
    assert repos[0].sources_line() == "deb http://mirror.example/debian trixie main non-free-firmware"
    assert repos[2].url == "http://mirror.example/debian-security"


def test_local_mirror_is_the_only_repository() -> None:
    repos = repositories(config(local_mirror="file:///srv/mirror", mirror="http://x/debian"))  # type: ignore[arg-type]
    assert [r.sources_line() for r in repos] == ["deb copy:///srv/mirror trixie main"]


def test_architectures() -> None:
    assert debian_architecture(config(architecture="arm64")) == "arm64"  # type: ignore[arg-type]
    assert debian_architecture(config(architecture="x86-64")) == "amd64"  # type: ignore[arg-type]
    with pytest.raises(BuildError, match="Architecture=alpha"):
        debian_architecture(config(architecture="alpha"))  # type: ignore[arg-type]


def test_experimental_comes_with_sid() -> None:
    assert [r.suite for r in repositories(config(release="experimental"))] == ["sid", "experimental"]  # type: ignore[arg-type]


@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_stable_releases(release: str) -> None:
    suites = [r.suite for r in repositories(config(release=release))]  # type: ignore[arg-type]
    assert suites == [release, f"{release}-updates", f"{release}-security"]


def test_image_keeps_mirror_when_building_from_local_mirror() -> None:
    conf = config(local_mirror="file:///srv/mirror", mirror="http://x/debian", release="sid")
    assert [r.sources_line() for r in repositories(conf, for_image=True)] == ["deb http://x/debian sid main"]  # type: ignore[arg-type]


def test_trusted_option_in_sources_line() -> None:
    repo = repositories(config(release="sid"))[0].with_options("trusted=yes")  # type: ignore[arg-type]
    assert repo.sources_line() == "deb [trusted=yes] http://deb.debian.org/debian sid main"
