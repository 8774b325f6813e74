"""Figures for the configuration loader: time to resolve a large tree, and the import time of the CLI.

Run: python benchmarks/config.py   (with imagebuild importable, e.g. PYTHONPATH=src)
Goal: resolving 200 drop-ins and 5 images in under 150 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DROPINS = 200
IMAGES = 5
RUNS = 15


def make_tree(root: Path) -> None:
    """A tree that uses what real trees use: lists, matches, specifiers, default paths, includes."""
    (root / "mkosi.conf").write_text(
        "[Distribution]\nDistribution=debian\nRelease=trixie\n\n"
        "[Output]\nFormat=disk\nImageId=bench\nImageVersion=1.0\n\n"
        "[Content]\nPackages=systemd,udev\n    openssh-server\nHostname=%i-%d\n"
        "KernelCommandLine=console=ttyS0 quiet\nEnvironment=FOO=bar\n"
    )
    (root / "mkosi.extra").mkdir()
    (root / "mkosi.cache").mkdir()
    (root / "shared.conf").write_text("[Content]\nPackages=shared\n")
    dropins = root / "mkosi.conf.d"
    dropins.mkdir()
    for i in range(DROPINS):
        if i % 4 == 0:
            text = f"[Match]\nDistribution=|debian\nDistribution=|ubuntu\n\n[Content]\nPackages=pkg{i}a,pkg{i}b\n"
        elif i % 4 == 1:
            text = f"[Match]\nFormat=!tar\nImageVersion=>=0.9\n\n[Content]\nRemoveFiles=/usr/share/doc/{i}\n"
        elif i % 4 == 2:
            text = f"[Config]\nInclude=shared.conf\n\n[Content]\nEnvironment=VAR{i}=%d-%r\nBuildPackages=b{i}\n"
        else:
            text = f"[Match]\nArchitecture=arm64\n\n[Content]\nPackages=never{i}\n"
        (dropins / f"{i:03d}-dropin.conf").write_text(text)
    images = root / "mkosi.images"
    images.mkdir()
    for i in range(IMAGES):
        d = images / f"image{i}"
        d.mkdir()
        deps = f"[Config]\nDependencies=image{i - 1}\n\n" if i else ""
        (d / "mkosi.conf").write_text(f"{deps}[Output]\nFormat=directory\n\n[Content]\nPackages=image{i}\n")
        (d / "mkosi.extra").mkdir()


def time_resolve(root: Path) -> list[float]:
    from imagebuild.config import load

    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        _, images = load(["-C", str(root), "summary"])
        times.append(time.perf_counter() - start)
        assert len(images) == IMAGES
    return times


def _env(pycache: str) -> dict[str, str]:
    # Measure as installed: with bytecode (a private cache, so the repository stays clean).
    env = dict(os.environ, PYTHONPYCACHEPREFIX=pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def import_time(module: str, pycache: str) -> tuple[float, float]:
    """(median wall time of `python -c 'import module'`, median of the bare interpreter), in seconds."""

    def run(code: str) -> float:
        subprocess.run([sys.executable, "-c", code], check=True, env=_env(pycache))  # warm the bytecode
        samples = []
        for _ in range(9):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=_env(pycache))
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    return run(f"import {module}"), run("pass")


def self_import_time(module: str, pycache: str) -> float:
    """The median cumulative time -X importtime reports for the module itself, in seconds."""
    samples = []
    for _ in range(9):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True, text=True, check=True, env=_env(pycache),
        ).stderr
        for line in out.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                samples.append(int(parts[1]) / 1e6)
    return statistics.median(samples) if samples else float("nan")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        root.mkdir()
        make_tree(root)
        times = time_resolve(root)
    print(f"resolve {DROPINS} drop-ins and {IMAGES} images: median {statistics.median(times) * 1000:.1f} ms, "
          f"best {min(times) * 1000:.1f} ms (goal: under 150 ms)")

    with tempfile.TemporaryDirectory() as pycache:
        for module in ("imagebuild.config", "imagebuild.cli"):
            try:
                total, bare = import_time(module, pycache)
            except subprocess.CalledProcessError:
                print(f"import {module}: not importable")
                continue
            print(f"import {module}: {self_import_time(module, pycache) * 1000:.1f} ms (-X importtime, "
                  f"median); process {total * 1000:.1f} ms vs {bare * 1000:.1f} ms for a bare interpreter")


if __name__ == "__main__":
    main()
