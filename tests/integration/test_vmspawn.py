"""vmspawn through the real CLI with the real tools tree (ToolsTree=default, Debian trixie): that tree has no
systemd-vmspawn (trixie's systemd 257 ships none), so the verb says so and what to do, before building anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import imagebuild

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parent / "qemu_image"


def test_vmspawn_without_systemd_vmspawn_in_the_tools_tree(tmp_path: Path) -> None:
    directory = tmp_path / "image"
    shutil.copytree(CONFIG, directory, symlinks=True)
    result = imagebuild("-C", str(directory), "vmspawn", timeout=900)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "systemd-vmspawn" in result.stderr and "the tools tree has none" in result.stderr
    assert "qemu verb" in result.stderr
    assert not (directory / "mkosi.output").exists() or not any((directory / "mkosi.output").iterdir())
