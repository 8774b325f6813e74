"""Specifiers: %d %r %a %t %o %O %i %v and %%."""

from __future__ import annotations

import logging
import textwrap

import pytest

from .conftest import Tree


def hostname(tree: Tree, text: str, *argv: str, before: str = "") -> str | None:
    tree.write("mkosi.conf", f"{textwrap.dedent(before)}\n[Content]\nHostname={text}\n")
    return tree.one(*argv).hostname


def test_the_example_of_the_json_summary(tree: Tree) -> None:
    assert hostname(tree, "%i-%d", before="[Output]\nImageId=example") == "example-debian"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%d", "debian"),
        ("%r", "bookworm"),
        ("%a", "x86-64"),
        ("%t", "disk"),
        ("%o", "image"),
        ("100%%", "100%"),
        ("%%d", "%d"),
        ("trailing%", "trailing%"),
        ("%d-%r-%a", "debian-bookworm-x86-64"),
    ],
)
def test_specifiers_with_defaults(tree: Tree, text: str, expected: str) -> None:
    assert hostname(tree, text) == expected


def test_specifiers_with_configured_values(tree: Tree) -> None:
    before = """
        [Distribution]
        Distribution=fedora
        Release=40
        Architecture=arm64
        [Output]
        Format=tar
        ImageId=os
        ImageVersion=3
        OutputDirectory=out
    """
    assert hostname(tree, "%d.%r.%a.%t.%i.%v.%o", before=before) == "fedora.40.arm64.tar.os.3.os_3"
    tree.write("mkosi.conf", f"{textwrap.dedent(before)}\n[Content]\nExtraTrees=%O/x\n")
    assert tree.one().extra_trees[0].source == tree.root / "out/x"


def test_specifiers_use_the_command_line_value(tree: Tree) -> None:
    assert hostname(tree, "%d", "--distribution=fedora") == "fedora"


def test_specifier_of_an_unset_setting_is_dropped_with_a_warning(
    tree: Tree, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert hostname(tree, "v%v") == "v"
    assert "%v stands for ImageVersion=, which is not set yet" in caplog.text


def test_unknown_specifier_is_dropped_with_a_warning(tree: Tree, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert hostname(tree, "a%Zb") == "ab"
    assert "unknown specifier %Z" in caplog.text


def test_specifiers_see_values_assigned_before_them(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nHostname=%t\n[Output]\nFormat=tar\n")
    assert tree.one().hostname == "disk"
    tree.write("mkosi.conf", "[Output]\nFormat=tar\n[Content]\nHostname=%t\n")
    assert tree.one().hostname == "tar"
