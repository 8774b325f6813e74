"""Figures for configs as test parameters: what the plugin adds per cell before building (config
resolution, cache key and lookup), and a two-cell session end to end, cold and cached.

Run: .venv/bin/python benchmarks/parameters.py [--no-session]   (the session part needs root)
Goal: at most 100 ms per cell before building.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from imagebuild.config import Overrides  # noqa: E402
from pytest_mkosi.images import ImageCache, resolve_configs  # noqa: E402
from pytest_mkosi.matrix import CellConfigs, cells, parse_axis  # noqa: E402

MINIMAL = ROOT / "examples" / "minimal"
RUNS = 5
TEST = '''
def test_boot(mkosi_machine, mkosi_config):
    assert mkosi_machine.succeed(". /etc/os-release; echo $VERSION_CODENAME").strip() == mkosi_config.release
'''


def per_cell_overhead(cache_root: Path) -> None:
    axes = [parse_axis("Release=bookworm,trixie,sid"), parse_axis("Format=directory,tar")]
    grid = cells([MINIMAL], axes)
    resolve_ms, lookup_ms = [], []
    for _ in range(RUNS):
        resolved = CellConfigs(Overrides(), resolve_configs)
        cache = ImageCache(cache_root)
        for cell in grid:
            started = time.perf_counter()
            config = resolved.main(cell)
            middle = time.perf_counter()
            cache.lookup(config)
            done = time.perf_counter()
            resolve_ms.append((middle - started) * 1000)
            lookup_ms.append((done - middle) * 1000)
    total = [r + s for r, s in zip(resolve_ms, lookup_ms, strict=True)]
    print(f"per cell before building ({len(grid)} cells x {RUNS} runs): resolve median "
          f"{statistics.median(resolve_ms):.1f} ms, cache key + lookup median {statistics.median(lookup_ms):.1f} ms, "
          f"together median {statistics.median(total):.1f} ms, max {max(total):.1f} ms (goal <= 100 ms)")


def collection(tmp: Path) -> None:
    (tmp / "test_cells.py").write_text("def test_cell(mkosi_config):\n    pass\n")
    timings = {}
    for label, matrix in (("1 cell", []), ("6 cells", ["--mkosi-matrix=Release=bookworm,trixie,sid",
                                                     "--mkosi-matrix=Format=directory,tar"])):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                        f"--mkosi-config={MINIMAL}", *matrix, str(tmp)], cwd=tmp, check=True,
                       capture_output=True)
        timings[label] = time.perf_counter() - started
    per_cell = (timings["6 cells"] - timings["1 cell"]) / 5 * 1000
    print(f"pytest --collect-only: 1 cell {timings['1 cell']:.2f} s, 6 cells {timings['6 cells']:.2f} s "
          f"({per_cell:.0f} ms per extra cell)")


def session(tmp: Path) -> None:
    (tmp / "test_boot.py").write_text(TEST)
    cache = tmp / "images"
    for label in ("cold", "cached"):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Release=bookworm,trixie",
                                 f"--mkosi-cache-dir={cache}", str(tmp / "test_boot.py")],
                                cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-300:]
        print(f"two-cell session (Release=bookworm,trixie, build + boot + one test each), {label}: "
              f"{seconds:.1f} s ({summary})")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-parameters-") as scratch:
        tmp = Path(scratch)
        per_cell_overhead(tmp / "lookup-cache")
        collection(tmp)
        if "--no-session" not in sys.argv:
            session(tmp)


if __name__ == "__main__":
    main()
