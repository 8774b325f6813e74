"""Version comparison (UAPI version format) and the version operators of [Match]."""

from __future__ import annotations

import pytest

from imagebuild.config.versions import GenericVersion, compare_versions, version_matches


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1", "2"),
        ("1.2", "1.10"),
        ("122.1", "123"),
        ("123~rc1", "123"),
        ("123~rc1", "123~rc2"),
        ("123", "123.1"),
        ("123-9", "123.1-1"),
        ("123a", "123b"),
        # A letter right after a number is newer than a point release ("123a" > "123.a" in systemd).
        ("1.2.1", "1.2a"),
        ("5.2", "5.10"),
        ("252", "257"),
        ("2.0^1", "2.0.1"),
        ("1.0", "1.0^post1"),
        ("abc", "1"),
    ],
)
def test_ordering(older: str, newer: str) -> None:
    assert compare_versions(older, newer) < 0
    assert compare_versions(newer, older) > 0


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.0"), ("01", "1"), ("1.001", "1.1"), ("1_0", "1_0")])
def test_equal(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0


@pytest.mark.parametrize(
    ("condition", "version", "expected"),
    [
        ("252", "252", True),
        ("==252", "252", True),
        ("!=252", "252", False),
        (">=250", "252", True),
        (">252", "252", False),
        ("<253", "252", True),
        ("<=251", "252", False),
        (">1.2", "1.10", True),
    ],
)
def test_operators(condition: str, version: str, expected: bool) -> None:
    assert version_matches(condition, version) is expected


def test_generic_version_sorts() -> None:
    assert sorted(["1.10", "1.2", "1.2~rc1"], key=GenericVersion) == ["1.2~rc1", "1.2", "1.10"]
    assert GenericVersion("01") == GenericVersion("1")
