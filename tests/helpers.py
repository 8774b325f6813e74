"""Shared bits of the project's tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "examples" / "minimal"


def imagebuild(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the imagebuild CLI as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "imagebuild", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
    )


def write_config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mkosi.conf").write_text(text)
    return directory
