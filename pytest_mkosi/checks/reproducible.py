"""Whether two builds produced bit-identical outputs, and if not, which files differ in what.

Trees (Format=directory) are compared entry by entry: type, mode, owner, mtime, xattrs, symlink
target, content. Tar archives (compressed or not) are compared member by member the same way, so a
mismatch names the file inside the archive; other image files by size and first differing offset.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# At most this many differences are listed (about a screenful with the header and diffoscope's lines).
MAX_LISTED = 20
DIFFOSCOPE_LINES = 15
_DECOMPRESSORS = {".zst": ["zstd", "-dc"], ".xz": ["xz", "-dc"], ".gz": ["gzip", "-dc"], ".bz2": ["bzip2", "-dc"],
                  ".lz4": ["lz4", "-dc"]}


@dataclass(frozen=True)
class Difference:
    path: str  # relative to the image (or the artifact's name for whole files)
    what: tuple[str, ...]  # e.g. ("content", "mtime 1700000000 != 1700000123")

    def describe(self) -> str:
        return f"{self.path}: {', '.join(self.what)}"


# ---- trees --------------------------------------------------------------------------------------


def _entries(root: Path) -> Iterator[str]:
    """Paths below root, relative, without following symlinks; root itself is ""."""
    yield ""
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = os.path.relpath(directory, root)
        for name in [*sorted(filenames), *(d for d in dirnames if os.path.islink(os.path.join(directory, d)))]:
            yield name if base == "." else f"{base}/{name}"
        for name in dirnames:
            if not os.path.islink(os.path.join(directory, name)):
                yield name if base == "." else f"{base}/{name}"


def _xattrs(path: Path) -> dict[str, bytes]:
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
        return {n: os.getxattr(path, n, follow_symlinks=False) for n in names}
    except OSError:
        return {}


def _same_content(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def _compare_entry(a: Path, b: Path) -> list[str]:
    sa, sb = a.lstat(), b.lstat()
    what: list[str] = []
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        return [f"type {_kind(sa.st_mode)} != {_kind(sb.st_mode)}"]
    if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
        what.append(f"mode {stat.S_IMODE(sa.st_mode):o} != {stat.S_IMODE(sb.st_mode):o}")
    if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
        what.append(f"owner {sa.st_uid}:{sa.st_gid} != {sb.st_uid}:{sb.st_gid}")
    if stat.S_ISLNK(sa.st_mode):
        ta, tb = os.readlink(a), os.readlink(b)
        if ta != tb:
            what.append(f"symlink target {ta!r} != {tb!r}")
    elif stat.S_ISREG(sa.st_mode):
        if sa.st_size != sb.st_size:
            what.append(f"content (size {sa.st_size} != {sb.st_size})")
        elif not _same_content(a, b):
            what.append("content")
    elif (stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode)) and sa.st_rdev != sb.st_rdev:
        what.append("device number")
    if sa.st_mtime_ns != sb.st_mtime_ns:
        same_second = sa.st_mtime_ns // 10**9 == sb.st_mtime_ns // 10**9
        ma, mb = (sa.st_mtime_ns, sb.st_mtime_ns) if same_second else (int(sa.st_mtime), int(sb.st_mtime))
        what.append(f"mtime {ma} != {mb}{' (ns)' if same_second else ''}")
    xa, xb = _xattrs(a), _xattrs(b)
    if xa != xb:
        names = sorted(n for n in {*xa, *xb} if xa.get(n) != xb.get(n))
        what.append(f"xattrs {', '.join(names)}")
    return what


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "char device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "unknown"


def compare_trees(a: Path, b: Path) -> list[Difference]:
    left, right = list(_entries(a)), list(_entries(b))
    only_right = set(right) - set(left)
    diffs: list[Difference] = []
    for rel in left:
        pa, pb = a / rel if rel else a, b / rel if rel else b
        if not (pb.exists() or pb.is_symlink()):
            diffs.append(Difference(f"/{rel}", ("only in the first",)))
            continue
        what = _compare_entry(pa, pb)
        if what:
            diffs.append(Difference(f"/{rel}", tuple(what)))
    diffs += [Difference(f"/{rel}", ("only in the second",)) for rel in right if rel in only_right]
    return diffs


# ---- archives and image files -------------------------------------------------------------------


def _is_tar(path: Path) -> bool:
    name = path.name
    return any(name.endswith(".tar" + s) for s in ("", *_DECOMPRESSORS))


def _plain_tar(path: Path, scratch: Path) -> Path:
    for suffix, argv in _DECOMPRESSORS.items():
        if path.name.endswith(suffix):
            target = scratch / (path.name + ".plain")
            with target.open("wb") as out:
                subprocess.run([*argv, os.fspath(path)], stdout=out, check=True)
            return target
    return path


def _members(path: Path) -> dict[str, tuple[tarfile.TarInfo, str]]:
    out: dict[str, tuple[tarfile.TarInfo, str]] = {}
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            digest = ""
            if info.isfile():
                f = tar.extractfile(info)
                digest = hashlib.sha256(f.read() if f else b"").hexdigest()
            out[info.name.removeprefix("./")] = (info, digest)
    return out


def compare_tars(a: Path, b: Path) -> list[Difference]:
    with tempfile.TemporaryDirectory(prefix="pytest-mkosi-compare-") as scratch:
        ma, mb = _members(_plain_tar(a, Path(scratch))), _members(_plain_tar(b, Path(scratch)))
    diffs: list[Difference] = []
    for name in [*ma, *(n for n in mb if n not in ma)]:
        if name not in mb or name not in ma:
            diffs.append(Difference(f"/{name}", ("only in the first" if name in ma else "only in the second",)))
            continue
        (ia, da), (ib, db) = ma[name], mb[name]
        what: list[str] = []
        if ia.type != ib.type:
            what.append("type")
        if ia.mode != ib.mode:
            what.append(f"mode {ia.mode:o} != {ib.mode:o}")
        if (ia.uid, ia.gid) != (ib.uid, ib.gid):
            what.append(f"owner {ia.uid}:{ia.gid} != {ib.uid}:{ib.gid}")
        if da != db:
            what.append(f"content (size {ia.size} != {ib.size})" if ia.size != ib.size else "content")
        if ia.linkname != ib.linkname:
            what.append(f"link target {ia.linkname!r} != {ib.linkname!r}")
        if int(ia.mtime) != int(ib.mtime):
            what.append(f"mtime {int(ia.mtime)} != {int(ib.mtime)}")
        if ia.pax_headers != ib.pax_headers:
            keys = sorted(k for k in {*ia.pax_headers, *ib.pax_headers}
                          if ia.pax_headers.get(k) != ib.pax_headers.get(k))
            what.append(f"pax headers {', '.join(keys)}")
        if what:
            diffs.append(Difference(f"/{name}", tuple(what)))
    if not diffs and not _same_content(a, b):
        # Same members, different bytes: member order, padding or the compressor.
        diffs.append(Difference(a.name, ("archive bytes (same members: order, padding or compression)",)))
    return diffs


def _first_difference(a: Path, b: Path) -> int | None:
    offset = 0
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return offset + next((i for i, (x, y) in enumerate(zip(ca, cb, strict=False)) if x != y),
                                     min(len(ca), len(cb)))
            if not ca:
                return None
            offset += len(ca)


def compare_paths(a: Path, b: Path, name: str) -> list[Difference]:
    """Differences between two artifacts of the same name."""
    if a.is_symlink() or b.is_symlink():
        ta = os.readlink(a) if a.is_symlink() else None
        tb = os.readlink(b) if b.is_symlink() else None
        return [] if ta == tb else [Difference(name, (f"symlink {ta!r} != {tb!r}",))]
    if a.is_dir() and b.is_dir():
        return compare_trees(a, b)
    if a.is_dir() != b.is_dir():
        return [Difference(name, ("a directory in one build, a file in the other",))]
    if _is_tar(a):
        return compare_tars(a, b)
    if a.stat().st_size != b.stat().st_size:
        return [Difference(name, (f"size {a.stat().st_size} != {b.stat().st_size}",))]
    offset = _first_difference(a, b)
    return [] if offset is None else [Difference(name, (f"bytes differ from offset {offset}",))]


def compare_artifacts(a: Sequence[Path], b: Sequence[Path]) -> list[Difference]:
    """Both builds' artifacts compared by name (the main image, manifests, checksums ...)."""
    by_name_a, by_name_b = {p.name: p for p in a}, {p.name: p for p in b}
    diffs: list[Difference] = []
    for name in sorted({*by_name_a, *by_name_b}):
        if name not in by_name_b or name not in by_name_a:
            diffs.append(Difference(name, ("only in the first build" if name in by_name_a
                                           else "only in the second build",)))
            continue
        diffs += compare_paths(by_name_a[name], by_name_b[name], name)
    return diffs


def report(diffs: Sequence[Difference], a: Path, b: Path) -> list[str]:
    """The lines pytest shows for a failed `assert mkosi_rebuild == mkosi_image`."""
    lines = [f"the builds differ in {len(diffs)} file{'s' if len(diffs) != 1 else ''} ({a} vs {b}):"]
    lines += [f"  {d.describe()}" for d in diffs[:MAX_LISTED]]
    if len(diffs) > MAX_LISTED:
        lines.append(f"  ... and {len(diffs) - MAX_LISTED} more")
    lines += diffoscope_summary(a, b)
    return lines


def diffoscope_summary(a: Path, b: Path) -> list[str]:
    tool = shutil.which("diffoscope")
    if tool is None:
        return []
    try:
        result = subprocess.run([tool, "--text", "-", "--no-progress", os.fspath(a), os.fspath(b)],
                                capture_output=True, text=True, errors="replace", timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return ["diffoscope: no answer within 120 s"]
    out = result.stdout.splitlines()
    return ["diffoscope:", *(f"  {line}" for line in out[:DIFFOSCOPE_LINES]),
            *([f"  ... ({len(out) - DIFFOSCOPE_LINES} more lines)"] if len(out) > DIFFOSCOPE_LINES else [])]
