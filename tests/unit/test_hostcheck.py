"""What the plugin checks of the host before a cell builds: which host a distribution's build reaches first."""

from __future__ import annotations

import pytest

from imagebuild.config import load
from imagebuild.config.enums import Distribution
from pytest_mkosi import hostcheck


@pytest.mark.parametrize("distribution", [d for d in Distribution if d != Distribution.custom])
def test_every_distribution_names_the_host_it_downloads_from(distribution: Distribution) -> None:
    # From the distribution's own module (DEFAULT_MIRROR, or DOWNLOAD_URL where mirrors are looked up):
    # without it, an unreachable mirror would error every test of the cell instead of skipping it.
    _, images = load(["-d", str(distribution), "summary"])
    found = hostcheck.mirror_host(images[-1])
    assert found is not None and "." in found[0] and found[1] in (80, 443)


def test_a_configured_mirror_wins_and_local_ones_need_no_network() -> None:
    _, images = load(["-d", "fedora", "--mirror=http://mirror.example:8080/fedora", "summary"])
    assert hostcheck.mirror_host(images[-1]) == ("mirror.example", 8080)
    _, images = load(["-d", "debian", "--local-mirror=file:///srv/debian", "summary"])
    assert hostcheck.mirror_host(images[-1]) is None
    _, images = load(["-d", "custom", "summary"])
    assert hostcheck.mirror_host(images[-1]) is None
