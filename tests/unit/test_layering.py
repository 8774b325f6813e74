"""The dependency rules of the layout: imagebuild never needs pytest or the plugin; inside the plugin only
plugin.py, options.py, terminal.py (the plugin's terminal lines), fixtures/ and the evidence reporter
(evidence/report.py) touch pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pytest_mkosi

PLUGIN = Path(pytest_mkosi.__file__).parent
HOOK_SIDE = ("plugin.py", "options.py", "terminal.py", "fixtures")
PYTEST_FREE = sorted(
    ".".join(p.relative_to(PLUGIN.parent).with_suffix("").parts)
    for p in PLUGIN.rglob("*.py")
    if p.name != "__init__.py" and p.relative_to(PLUGIN).parts[0] not in HOOK_SIDE
    and p.relative_to(PLUGIN).parts != ("evidence", "report.py")
)


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_imagebuild_pulls_in_neither_pytest_nor_the_plugin() -> None:
    modules = imported_after("import imagebuild, imagebuild.cli, imagebuild.pipeline, imagebuild.launch.qemu")
    assert "pytest" not in modules and "_pytest" not in modules
    assert not [m for m in modules if m.startswith("pytest_mkosi")]


@pytest.mark.parametrize("module", PYTEST_FREE)
def test_plugin_module_outside_the_hooks_and_fixtures_does_not_import_pytest(module: str) -> None:
    assert {"pytest", "_pytest"} & imported_after(f"import {module}") == set(), module


def test_the_old_build_package_is_gone() -> None:
    source = Path(__file__).parents[2] / "src/imagebuild"
    assert not (source / "build").exists()
    offenders = [p for p in source.rglob("*.py") if "imagebuild.build" in p.read_text()]
    assert offenders == []
