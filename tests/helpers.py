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


def processes_mentioning(text: str, *, arguments: bool = False) -> list[str]:
    """The processes whose command line mentions `text`, as "PID NAME" (by default: a failed assertion
    prints them, and arguments may carry a user's credentials) or, with `arguments`, whole command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                words = cmdline.decode(errors="replace").split("\0")
                found.append(" ".join(words).strip() if arguments else f"{entry.name} {Path(words[0]).name}")
    return found
