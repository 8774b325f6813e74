"""[Match] and [TriggerMatch]: every condition of the man page's table, triggers, negation, combination."""

from __future__ import annotations

import pytest

from imagebuild.config import ConfigError
from imagebuild.config.enums import Architecture, Distribution
from imagebuild.config.host import HostFacts, set_host

from .conftest import Tree


def included(tree: Tree, match: str, *argv: str, base: str = "") -> bool:
    """Whether a drop-in with the given [Match] text is read."""
    if base:
        tree.write("mkosi.conf", base)
    tree.write("mkosi.conf.d/50-probe.conf", f"{match}\n[Content]\nPackages=probe\n")
    return "probe" in tree.one(*argv).packages


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("Distribution=debian", True),
        ("Distribution=fedora", False),
        ("Distribution=!fedora", True),
        ("Release=bookworm", True),
        ("Release=trixie", False),
        ("Architecture=x86-64", True),
        ("Architecture=arm64", False),
        ("Format=disk", True),
        ("Format=directory", False),
        ("Bootable=auto", True),
        ("Bootable=yes", False),
        ("ImageId=anything", False),  # unset: fails
        ("ImageVersion=1", False),  # unset: fails
        ("Profile=dev", False),  # unset: fails
        ("BuildSources=kernel", False),  # no targets configured
        ("HostArchitecture=x86-64", True),
        ("HostArchitecture=arm64", False),
        ("SystemdVersion=252", True),
        ("SystemdVersion=>=254", False),
        ("SystemdVersion=<254", True),
        ("PathExists=mkosi.conf.d", True),
        ("PathExists=/nonexistent/path", False),
        ("PathExists=!/nonexistent/path", True),
    ],
)
def test_conditions_against_defaults(tree: Tree, condition: str, expected: bool) -> None:
    assert included(tree, f"[Match]\n{condition}") is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("ImageId=my-*", True),
        ("ImageId=my-im?ge", True),
        ("ImageId=other*", False),
        ("ImageVersion=1.2.3", True),
        ("ImageVersion=>=1.2", True),
        ("ImageVersion=<1.2.10", True),
        ("ImageVersion=>1.3", False),
        ("ImageVersion=!=1.2.3", False),
        ("BuildSources=kernel", True),
        ("BuildSources=/kernel", True),
        ("BuildSources=other", False),
        ("Profile=dev", True),
        ("Format=tar", True),
        ("Bootable=no", True),
        ("Release=trixie", True),
        ("Distribution=debian", True),
    ],
)
def test_conditions_against_configured_values(tree: Tree, condition: str, expected: bool) -> None:
    tree.mkdir("mkosi.profiles/dev")
    tree.mkdir("src")
    base = """
        [Config]
        Profile=dev
        [Distribution]
        Release=trixie
        [Output]
        ImageId=my-image
        ImageVersion=1.2.3
        Format=tar
        [Content]
        BuildSources=src:kernel
        Bootable=no
    """
    assert included(tree, f"[Match]\n{condition}", base=base) is expected


def test_all_plain_conditions_must_hold(tree: Tree) -> None:
    assert included(tree, "[Match]\nDistribution=debian\nFormat=disk") is True
    assert included(tree, "[Match]\nDistribution=debian\nFormat=tar") is False


def test_triggering_conditions_are_ored(tree: Tree) -> None:
    assert included(tree, "[Match]\nFormat=|tar\nFormat=|disk") is True
    assert included(tree, "[Match]\nFormat=|tar\nFormat=|cpio") is False


def test_trigger_and_negation_combine(tree: Tree) -> None:
    assert included(tree, "[Match]\nDistribution=|!debian\nFormat=|disk") is True
    assert included(tree, "[Match]\nDistribution=|!debian\nFormat=|!disk") is False


def test_plain_and_triggering_conditions_together(tree: Tree) -> None:
    assert included(tree, "[Match]\nDistribution=debian\nFormat=|tar\nFormat=|disk") is True
    assert included(tree, "[Match]\nDistribution=fedora\nFormat=|tar\nFormat=|disk") is False


def test_several_match_sections_are_anded_and_triggers_reset(tree: Tree) -> None:
    text = "[Match]\nFormat=|disk\nFormat=|directory\n\n[Match]\nArchitecture=|x86-64\nArchitecture=|arm64"
    assert included(tree, text) is True
    text = "[Match]\nFormat=|disk\n\n[Match]\nArchitecture=|arm64\nArchitecture=|s390x"
    assert included(tree, text) is False


def test_trigger_match_sections_are_ored(tree: Tree) -> None:
    text = ("[TriggerMatch]\nDistribution=debian\nRelease=bookworm\n\n"
            "[TriggerMatch]\nDistribution=ubuntu\nRelease=focal")
    assert included(tree, text) is True
    assert included(tree, text, "-d", "ubuntu", "-r", "focal") is True
    assert included(tree, text, "-d", "ubuntu", "-r", "jammy") is False


def test_match_and_trigger_match_mix(tree: Tree) -> None:
    text = "[Match]\nFormat=disk\n[TriggerMatch]\nDistribution=fedora\n[TriggerMatch]\nRelease=bookworm"
    assert included(tree, text) is True
    text = "[Match]\nFormat=tar\n[TriggerMatch]\nRelease=bookworm"
    assert included(tree, text) is False
    text = "[Match]\nFormat=disk\n[TriggerMatch]\nDistribution=fedora\n[TriggerMatch]\nRelease=sid"
    assert included(tree, text) is False


def test_matches_see_values_assigned_so_far_not_later_ones(tree: Tree) -> None:
    tree.write("mkosi.conf.d/10.conf", "[Output]\nFormat=tar\n")
    tree.write("mkosi.conf.d/20.conf", "[Match]\nFormat=tar\n[Content]\nPackages=after-tar\n")
    tree.write("mkosi.conf.d/05.conf", "[Match]\nFormat=tar\n[Content]\nPackages=before-tar\n")
    assert tree.one().packages == ["after-tar"]


def test_match_on_host_distribution_default(tree: Tree) -> None:
    set_host(HostFacts(Distribution.fedora, "40", Architecture.arm64, "256"))
    assert included(tree, "[Match]\nDistribution=fedora\nRelease=40\nArchitecture=arm64") is True


def test_release_default_follows_the_distribution_seen_by_match(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Distribution]\nDistribution=fedora\n")
    assert included(tree, "[Match]\nRelease=39") is True


def test_match_looks_at_specifiers(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Output]\nImageId=debian-thing\n")
    assert included(tree, "[Match]\nImageId=%d-*") is True


def test_default_looked_at_by_match_is_kept(tree: Tree) -> None:
    # mkosi stores a default once a condition looked at it; a later @-default no longer changes it.
    tree.write("mkosi.conf", "[Match]\nDistribution=debian\n")
    tree.write("mkosi.conf.d/10.conf", "[Distribution]\n@Distribution=fedora\n")
    assert tree.one().distribution == Distribution.debian


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[Match]\nPackages=vim", "Packages= cannot be used in [Match]"),
        ("[Match]\nDistrbution=debian", "did you mean Distribution=?"),
        ("[Match]\nDistribution=", "needs a value"),
        ("[Match]\nDistribution=debain", "'debain' is not a valid value (accepted: fedora, debian"),
        ("[TriggerMatch]\nFormat=qcow2", "'qcow2' is not a valid value"),
        # A comparison operator with nothing to compare with, whether the setting is set or not.
        ("[Match]\nImageVersion=<", "ImageVersion=<: '<' needs a version after it"),
        ("[Match]\nImageVersion=!>=", "'>=' needs a version after it"),
        ("[Match]\nImageVersion=|==", "'==' needs a version after it"),
        ("[Match]\nSystemdVersion=>=", "SystemdVersion=>=: '>=' needs a version after it"),
        # Release= has no version comparisons in mkosi v22.
        ("[Match]\nRelease=>=", "Release=>=: [Match] compares this setting for equality only"),
        ("[Match]\nRelease=<trixie", "drop the comparison operator"),
        ("[Match]\nProfile=>=", "Profile=>=: [Match] compares this setting for equality only"),
    ],
)
def test_bad_conditions(tree: Tree, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        included(tree, text)
    assert message in str(e.value)
    assert "50-probe.conf:2:" in str(e.value)


def test_image_version_condition_on_a_set_version_is_checked_too(tree: Tree) -> None:
    with pytest.raises(ConfigError) as e:
        included(tree, "[Match]\nImageVersion=>", base="[Output]\nImageVersion=1.2\n")
    assert "50-probe.conf:2: [Match] ImageVersion=>: '>' needs a version after it" in str(e.value)
    assert included(tree, "[Match]\nImageVersion=>1", base="[Output]\nImageVersion=1.2\n")


def test_systemd_version_without_systemctl_fails_the_condition(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    set_host(HostFacts(Distribution.debian, "bookworm", Architecture.x86_64, None))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert included(tree, "[Match]\nSystemdVersion=>=1") is False
    with pytest.raises(ConfigError, match="needs a version after it"):
        included(tree, "[Match]\nSystemdVersion=>=")
