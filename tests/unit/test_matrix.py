"""matrix.py: axes, cells, ids and the markers' narrowing, without pytest sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import Overrides
from pytest_mkosi.images import resolve_configs
from pytest_mkosi.matrix import CellConfigs, MarkerSettings, MatrixError, apply_markers, cells, parse_axis
from tests.helpers import MINIMAL


def test_axes_are_validated_against_the_settings_table() -> None:
    assert parse_axis("Release=bookworm, trixie").values == ("bookworm", "trixie")
    with pytest.raises(MatrixError, match="did you mean Architecture"):
        parse_axis("Architectur=x86-64")
    with pytest.raises(MatrixError, match="--mkosi-matrix=Architecture=vax"):
        parse_axis("Architecture=vax")


def test_cross_product_and_marker_narrowing() -> None:
    axes = [parse_axis("Release=bookworm,trixie"), parse_axis("Format=directory,tar")]
    base = cells([MINIMAL], axes)
    assert len(base) == 4
    resolved = CellConfigs(Overrides(), resolve_configs)
    only_tar = apply_markers(base, axes, [MarkerSettings.of({"Format": "tar"}, "t")], resolved.main)
    assert [dict(c.settings)["Format"] for c in only_tar] == ["tar", "tar"]
    # A setting that is no axis overrides; the closest marker wins.
    disk = apply_markers(base[:1], axes, [MarkerSettings.of({"Hostname": "a"}, "fn"),
                                         MarkerSettings.of({"Hostname": "b"}, "module")], resolved.main)
    assert resolved.main(disk[0]).hostname == "a"


def test_cell_values_win_over_mkosi_args(tmp_path: Path) -> None:
    args = Overrides.from_settings({"Release": "sid", "Hostname": "x"})
    resolved = CellConfigs(args, resolve_configs)
    cell = cells([MINIMAL], [parse_axis("Release=bookworm")])[0]
    assert (resolved.main(cell).release, resolved.main(cell).hostname) == ("bookworm", "x")
