"""The command line: verbs, command-line-only options, one option per setting, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import SETTINGS, ConfigError, Verb, parse_command_line

from .conftest import Tree


def test_defaults() -> None:
    args, overrides = parse_command_line([])
    assert args.verb == Verb.build
    assert (args.cmdline, args.directory, args.force, args.json) == ([], None, 0, False)
    assert (args.genkey_common_name, args.genkey_valid_days, args.doc_format) == ("mkosi of %u", "730", "auto")
    assert overrides.values == {}


@pytest.mark.parametrize("verb", list(Verb))
def test_every_verb(verb: Verb) -> None:
    assert parse_command_line([verb.value])[0].verb == verb


def test_verbs_with_a_command_line_take_everything_after_them() -> None:
    args, _ = parse_command_line(["-f", "qemu", "-kernel", "vmlinuz", "--debug"])
    assert args.verb == Verb.qemu and args.cmdline == ["-kernel", "vmlinuz", "--debug"] and args.force == 1
    assert parse_command_line(["burn", "/dev/sdb"])[0].cmdline == ["/dev/sdb"]
    assert parse_command_line(["shell", "--", "ls"])[0].cmdline == ["--", "ls"]


def test_options_after_summary_are_still_options() -> None:
    args, _ = parse_command_line(["summary", "--json"])
    assert args.verb == Verb.summary and args.json
    args, _ = parse_command_line(["--json", "summary"])
    assert args.json


def test_double_dash_ends_options() -> None:
    args, _ = parse_command_line(["--", "build", "-x"])
    assert args.verb == Verb.build and args.cmdline == ["-x"]


def test_command_line_only_options(tmp_path: Path) -> None:
    args, _ = parse_command_line([
        "-C", str(tmp_path), "-ff", "--force", "--debug", "--debug-shell", "--debug-workspace", "--json",
        "-B", "--genkey-common-name=me", "--genkey-valid-days", "10", "--doc-format=man", "--no-pager",
        "summary",
    ])
    assert args.directory == tmp_path and args.force == 3
    assert args.debug and args.debug_shell and args.debug_workspace and args.json and args.auto_bump
    assert (args.genkey_common_name, args.genkey_valid_days, args.doc_format) == ("me", "10", "man")


def test_directory_forms(tmp_path: Path) -> None:
    assert parse_command_line([f"-C{tmp_path}"])[0].directory == tmp_path
    assert parse_command_line([f"--directory={tmp_path}"])[0].directory == tmp_path
    with pytest.raises(ConfigError, match="is not a directory"):
        parse_command_line(["-C", str(tmp_path / "missing")])


def test_help_and_version() -> None:
    assert parse_command_line(["-h"])[0].verb == Verb.help
    assert parse_command_line(["--help"])[0].verb == Verb.help
    args, _ = parse_command_line(["--version"])
    # Verb help too: a caller that does not look at args.version shows help instead of building.
    assert args.version and args.verb == Verb.help


@pytest.mark.parametrize(
    ("argv", "attr", "expected"),
    [
        (["-d", "fedora"], "distribution", "fedora"),
        (["-dfedora"], "distribution", "fedora"),
        (["--distribution", "arch"], "distribution", "arch"),
        (["-r", "40"], "release", "40"),
        (["-m", "http://m"], "mirror", "http://m"),
        (["-t", "tar"], "format", "tar"),
        (["--format=cpio"], "format", "cpio"),
        (["-o", "name"], "output", "name"),
        (["-p", "a,b", "-p", "c"], "packages", ["a", "b", "c"]),
        (["--package=a", "--package", "b"], "packages", ["a", "b"]),
        (["-i"], "incremental", True),
        (["-i", "no"], "incremental", False),
        (["-T"], "with_tests", False),
        (["--without-tests"], "with_tests", False),
        (["--ssh"], "ssh", True),
        (["--ssh=no"], "ssh", False),
        (["--autologin", "yes"], "autologin", True),
        (["--qemu-kvm"], "qemu_kvm", "enabled"),
        (["--qemu-kvm", "auto"], "qemu_kvm", "auto"),
        (["--compress-output"], "compress_output", "zstd"),
        (["--compress-output", "xz"], "compress_output", "xz"),
        (["--tools-tree"], "tools_tree", "default"),
        (["--cache-only"], "cache_only", "always"),
        (["--qemu-vsock-cid=hash"], "qemu_vsock_connection_id", -2),
        (["--environment=A=1 B=2"], "environment", {"A": "1", "B": "2"}),
        (["--credential", "x=1"], "credentials", {"x": "1"}),
        (["--tools-tree-package=a", "--tools-tree-packages=b"], "tools_tree_packages", ["a", "b"]),
        (["--kernel-command-line-extra=a b"], "kernel_command_line_extra", ["a", "b"]),
    ],
)
def test_setting_options(argv: list[str], attr: str, expected: object) -> None:
    _, overrides = parse_command_line(argv)
    value = overrides.values[attr].value
    assert value == expected


def test_flag_before_verb_does_not_swallow_the_verb() -> None:
    args, overrides = parse_command_line(["-i", "summary"])
    assert args.verb == Verb.summary and overrides.values["incremental"].value is True


def test_every_setting_has_an_option() -> None:
    for s in SETTINGS:
        assert s.long and all(o.startswith("--") for o in s.long), s.name


def test_paths_on_the_command_line_are_relative_to_the_directory(tree: Tree) -> None:
    tree.mkdir("extra")
    c = tree.one("--extra-tree=extra:/opt")
    assert c.extra_trees[0].source == tree.root / "extra"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--distro=debian"], "unknown option --distro; did you mean --distribution?"),
        (["--pakage=vim"], "did you mean --package?"),
        (["-Z"], "unknown option -Z"),
        (["biuld"], "unknown verb 'biuld'; did you mean build?"),
        (["summary", "extra"], "imagebuild summary takes no further arguments"),
        (["-d"], "-d needs a value"),
        (["--release"], "--release needs a value"),
        (["--format=qcow2"], "command line --format: Format=qcow2: 'qcow2' is not a valid value (accepted: directory"),
        (["--ssh=maybe"], "'maybe' is not a boolean"),
        (["--doc-format=pdf"], "--doc-format=pdf: accepted: auto, markdown, man, pandoc, system"),
        (["--json=perhaps"], "--json=perhaps: not a boolean"),
    ],
)
def test_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_command_line(argv)
    assert message in str(e.value)


def test_overrides_from_settings(tree: Tree) -> None:
    from imagebuild.config import Overrides, load_images

    args, _ = parse_command_line(["-C", str(tree.root), "summary"])
    tree.write("mkosi.conf", "[Distribution]\nDistribution=fedora\n[Content]\nPackages=a\n")
    overrides = Overrides.from_settings({"Distribution": "debian", "Release": "sid", "Packages": ["x", "y"]})
    [c] = load_images(args, overrides)
    assert (c.distribution, c.release, c.packages) == ("debian", "sid", ["x", "y", "a"])
    with pytest.raises(ConfigError, match="unknown setting 'Nope'"):
        Overrides.from_settings({"Nope": "x"})
