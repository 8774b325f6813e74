"""Artifacts reach the output directory whole or not at all."""

from __future__ import annotations

from pathlib import Path

from imagebuild.outputs.publish import publish


def test_publish_replaces_previous_output(tmp_path: Path) -> None:
    staged = tmp_path / "ws" / "image"
    staged.mkdir(parents=True)
    (staged / "new").write_text("new")
    out = tmp_path / "out" / "image"
    out.mkdir(parents=True)
    (out / "old").write_text("old")
    publish(staged, out, trash=tmp_path / "ws")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert not staged.exists()
    # Nothing hidden is left beside the artifact.
    assert [p.name for p in out.parent.iterdir()] == ["image"]


def test_publish_file(tmp_path: Path) -> None:
    staged = tmp_path / "image.tar"
    staged.write_text("tar")
    publish(staged, tmp_path / "out" / "image.tar", trash=tmp_path)
    assert (tmp_path / "out" / "image.tar").read_text() == "tar"
