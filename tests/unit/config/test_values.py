"""Parsers of single values: booleans, sizes, trees, UUIDs and the other small value types."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagebuild.config.enums import Compression, ConfigFeature
from imagebuild.config.errors import ValueProblem
from imagebuild.config.values import (
    VSOCK_CID_AUTO,
    VSOCK_CID_HASH,
    Ctx,
    TreeSpec,
    parse_boolean,
    parse_bytes,
    parse_compression,
    parse_feature,
    parse_root_password,
    parse_sector_size,
    parse_seed,
    parse_tree,
    parse_vsock_cid,
    resolve_path,
)


@pytest.mark.parametrize("text", ["1", "yes", "YES", "true", "True", "on", "ON", "y", "t"])
def test_true_booleans(text: str) -> None:
    assert parse_boolean(text) is True


@pytest.mark.parametrize("text", ["0", "no", "No", "false", "FALSE", "off", "Off", "n", "f"])
def test_false_booleans(text: str) -> None:
    assert parse_boolean(text) is False


@pytest.mark.parametrize("text", ["maybe", "2", "", "yess"])
def test_bad_booleans_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueProblem) as e:
        parse_boolean(text)
    assert "yes" in e.value.accepted and "off" in e.value.accepted


@pytest.mark.parametrize(
    ("text", "expected"),
    [("auto", ConfigFeature.auto), ("yes", ConfigFeature.enabled), ("0", ConfigFeature.disabled),
     ("enabled", ConfigFeature.enabled), ("disabled", ConfigFeature.disabled)],
)
def test_features(text: str, expected: ConfigFeature) -> None:
    assert parse_feature(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("1", 4096), ("1K", 4096), ("4K", 4096), ("5K", 8192), ("1M", 1024**2),
     ("2G", 2 * 1024**3), ("1.5G", 1536 * 1024**2), ("0.5M", 512 * 1024)],
)
def test_sizes_round_up_to_4096(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "1T", "abc", "-1M", "0", "1 G", "M"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueProblem):
        parse_bytes(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("zstd", Compression.zstd), ("zst", Compression.zstd), ("xz", Compression.xz), ("gzip", Compression.gz),
     ("yes", Compression.zstd), ("no", Compression.none), ("none", Compression.none), ("lz4", Compression.lz4)],
)
def test_compression(text: str, expected: Compression) -> None:
    assert parse_compression(text) == expected


def test_seed_accepts_uuids_and_random() -> None:
    assert parse_seed("random") is None
    assert parse_seed("0E4F0D16-4BD3-4D76-9B5A-0F51B3C4F1D0") == "0e4f0d16-4bd3-4d76-9b5a-0f51b3c4f1d0"
    assert parse_seed("0e4f0d164bd34d769b5a0f51b3c4f1d0") == "0e4f0d16-4bd3-4d76-9b5a-0f51b3c4f1d0"
    with pytest.raises(ValueProblem):
        parse_seed("not-a-uuid")


@pytest.mark.parametrize(("text", "ok"), [("512", True), ("4096", True), ("1024", True), ("256", False),
                                          ("8192", False), ("1000", False), ("x", False)])
def test_sector_sizes(text: str, ok: bool) -> None:
    if ok:
        assert parse_sector_size(text) == int(text)
    else:
        with pytest.raises(ValueProblem):
            parse_sector_size(text)


def test_vsock_cids() -> None:
    assert parse_vsock_cid("auto") == VSOCK_CID_AUTO
    assert parse_vsock_cid("hash") == VSOCK_CID_HASH
    assert parse_vsock_cid("42") == 42
    for bad in ("2", "0xFFFFFFFF", "x"):
        with pytest.raises(ValueProblem):
            parse_vsock_cid(bad)


def test_root_password_hashed_prefix() -> None:
    assert parse_root_password("hashed:$6$abc").hashed is True
    assert parse_root_password("hashed:$6$abc").value == "$6$abc"
    assert parse_root_password("secret").hashed is False
    assert "secret" not in repr(parse_root_password("secret"))


def test_relative_paths_are_taken_from_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    assert resolve_path("x", Ctx(tmp_path, "f")) == tmp_path / "x"
    with pytest.raises(ValueProblem, match="does not exist"):
        resolve_path("missing", Ctx(tmp_path, "f"))
    assert resolve_path("missing", Ctx(tmp_path, "f"), required=False) == tmp_path / "missing"


def test_paths_expand_home_and_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SUBDIR", "sub")
    assert resolve_path("~/$SUBDIR", Ctx(Path("/"), "f"), required=False) == tmp_path / "sub"


def test_trees(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path, "f")
    assert parse_tree("extra", ctx) == TreeSpec(tmp_path / "extra", None)
    assert parse_tree("extra:/opt/extra", ctx) == TreeSpec(tmp_path / "extra", Path("/opt/extra"))
    # Targets inside the image are absolute even when written without the leading slash.
    assert parse_tree("extra:opt", ctx).target == Path("/opt")
    assert parse_tree("src:kernel", ctx, absolute_target=False).target == Path("kernel")
    with pytest.raises(ValueProblem, match="empty target"):
        parse_tree("extra:", ctx)


def test_symlinks_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert resolve_path("link", Ctx(tmp_path, "f")) == tmp_path / "real"


def test_a_size_with_very_many_digits_is_exact_not_a_float_overflow() -> None:
    from imagebuild.config.values import parse_bytes

    assert parse_bytes("1" * 400) == int("1" * 400) + (-int("1" * 400) % 4096)
    assert parse_bytes("1.5K") == 4096
