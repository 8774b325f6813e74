"""The INI dialect: sections, repeated keys, continuation lines, comments, malformed lines."""

from __future__ import annotations

import pytest

from imagebuild.config import ConfigError
from imagebuild.config.ini import Entry, parse_ini


def settings(text: str) -> list[tuple[str, str, str]]:
    return [(e.section, e.key, e.value) for e in parse_ini(text, "f.conf") if e.key]


def test_sections_and_repeated_keys_keep_order() -> None:
    text = "[Content]\nPackages=a\nPackages=b\n[Output]\nFormat=tar\n"
    assert settings(text) == [("Content", "Packages", "a"), ("Content", "Packages", "b"), ("Output", "Format", "tar")]


def test_indented_lines_continue_the_value() -> None:
    text = "[Content]\nPackages=systemd,udev\n         openssh-server\nHostname=h\n"
    assert settings(text) == [("Content", "Packages", "systemd,udev\nopenssh-server"), ("Content", "Hostname", "h")]


def test_empty_value_followed_by_continuation_lines() -> None:
    text = "[Content]\nPackages=\n    a\n    b\n"
    assert settings(text) == [("Content", "Packages", "\na\nb")]


@pytest.mark.parametrize("comment", ["# a comment", "; a comment", "   # indented comment"])
def test_comment_lines_are_ignored(comment: str) -> None:
    assert settings(f"[Content]\n{comment}\nHostname=x\n") == [("Content", "Hostname", "x")]


def test_comments_inside_continuations_do_not_end_the_value() -> None:
    text = "[Content]\nPackages=a\n    # not b\n    c\n"
    assert settings(text) == [("Content", "Packages", "a\nc")]


def test_comment_after_a_value_is_stripped() -> None:
    assert settings("[Content]\nHostname=box # the name\n") == [("Content", "Hostname", "box")]


def test_whitespace_around_key_and_value_is_stripped() -> None:
    assert settings("[Content]\n  Hostname  =  box  \n") == [("Content", "Hostname", "box")]


def test_value_may_contain_equals_signs() -> None:
    assert settings("[Content]\nEnvironment=A=B=C\n") == [("Content", "Environment", "A=B=C")]


def test_a_file_indented_as_a_whole_is_dedented() -> None:
    assert settings("    [Content]\n    Hostname=x\n") == [("Content", "Hostname", "x")]


def test_line_numbers_point_at_the_key() -> None:
    entries = [e for e in parse_ini("\n\n[Content]\n\nHostname=x\n  y\nLocale=z\n", "f") if e.key]
    assert [(e.key, e.line) for e in entries] == [("Hostname", 5), ("Locale", 7)]


def test_section_ends_are_marked() -> None:
    entries = parse_ini("[Match]\nFormat=tar\n[Match]\nFormat=disk\n", "f")
    assert [e.key for e in entries] == ["Format", "", "Format", ""]
    assert isinstance(entries[1], Entry) and entries[1].section == "Match"


def test_empty_text_gives_nothing() -> None:
    assert parse_ini("", "f") == []
    assert parse_ini("# only a comment\n\n", "f") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hostname=x\n", "f.conf:1: 'Hostname=x' is outside of any section"),
        ("[Content\nHostname=x\n", "f.conf:1: '[Content' is not a valid section header"),
        ("[ ]\n", "f.conf:1: the section name cannot be empty"),
        ("[Content]\nHostname\n", "f.conf:2: 'Hostname' must be followed by '='"),
        ("[Content]\n=value\n", "f.conf:2: missing setting name before '='"),
    ],
)
def test_malformed_lines_are_errors_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_ini(text, "f.conf")
    assert message in str(e.value)
