"""CompressOutput= and CompressLevel=: compress an artifact, or the output of the program that makes it."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import IO

from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.outputs.naming import compression_suffix
from imagebuild.tools.run import find_tool

# Per algorithm: the program, its Debian package, the levels it accepts, and options that make its output
# depend only on the input (no name or timestamp in the header, the same output for any thread count).
COMPRESSORS: dict[str, tuple[str, str, range, tuple[str, ...]]] = {
    "zstd": ("zstd", "zstd", range(1, 20), ("-q", "-T0")),
    "xz": ("xz", "xz-utils", range(0, 10), ("-T0",)),
    "gz": ("gzip", "gzip", range(1, 10), ("-n",)),
    "bz2": ("bzip2", "bzip2", range(1, 10), ()),
    "lz4": ("lz4", "lz4", range(1, 13), ("-q",)),
    "lzma": ("xz", "xz-utils", range(0, 10), ("--format=lzma",)),
}


def compressor_argv(compression: str, level: int) -> list[str]:
    """The command that compresses its standard input to its standard output."""
    if compression not in COMPRESSORS:
        raise BuildError(f"CompressOutput={compression}: not supported yet (use {', '.join(COMPRESSORS)})")
    program, package, levels, options = COMPRESSORS[compression]
    if level not in levels:
        raise BuildError(
            f"CompressLevel={level}: {compression} takes levels {levels.start} to {levels.stop - 1}; "
            "set CompressLevel= to one of them"
        )
    return [find_tool(program, package=package), *options, f"-{level}", "-c"]


def _last_line(stream: IO[bytes]) -> str:
    stream.seek(0)
    return (stream.read().decode(errors="replace").strip().splitlines() or [""])[-1]


def write_compressed(
    argv: list[str], destination: Path, compression: str, level: int, *, what: str, stdin: int | None = None
) -> Path:
    """Run argv (which writes to its stdout) into destination + the compression's suffix, through the
    compressor when there is one. Returns the file written; nothing is left behind on failure."""
    stages = [argv] if compression == "none" else [argv, compressor_argv(compression, level)]
    target = destination.with_name(destination.name + compression_suffix(compression))
    logger.debug("+ %s > %s", " | ".join(shlex.join(a) for a in stages), target)
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        errors = [stack.enter_context(tempfile.TemporaryFile()) for _ in stages]
        try:
            with target.open("wb") as out:
                source: int | IO[bytes] | None = stdin if stdin is not None else subprocess.DEVNULL
                for index, stage in enumerate(stages):
                    last = index == len(stages) - 1
                    proc = subprocess.Popen(stage, stdin=source, stdout=out if last else subprocess.PIPE,
                                            stderr=errors[index])
                    if procs and procs[-1].stdout is not None:
                        # Only the compressor holds the pipe now: it sees EOF when the archiver ends.
                        procs[-1].stdout.close()
                    procs.append(proc)
                    source = proc.stdout
                statuses = [p.wait() for p in procs]
            for stage, status, err in zip(stages, statuses, errors, strict=True):
                if status != 0:
                    name = what if stage is argv else f"{compression} compression"
                    raise BuildError(f"{name} of {destination.name} failed (status {status}): {_last_line(err)}")
        except BaseException:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            target.unlink(missing_ok=True)
            raise
    return target


def compress(source: Path, compression: str, level: int) -> Path:
    """Replace source by source + the compression's suffix; return the new path (source for none)."""
    if compression == "none":
        return source
    compressed = source.with_name(source.name + compression_suffix(compression))
    argv = [*compressor_argv(compression, level), os.fspath(source)]
    write_compressed(argv, compressed, "none", level, what=f"{compression} compression")
    source.unlink()
    return compressed
