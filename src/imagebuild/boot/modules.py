"""Kernel module selection (KernelModules{,Initrd}Include=/Exclude=/IncludeHost=) with dependencies.

All modules are selected by default; Exclude= regexes drop modules, Include= regexes and the host's
loaded modules (IncludeHost=) take them back. Whatever is kept brings its dependencies (modules.dep) and
the firmware files it declares. Regexes match anywhere in the path below /usr/lib/modules/<kver>/kernel.
"""

from __future__ import annotations

import gzip
import lzma
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imagebuild.errors import BuildError
from imagebuild.tools.run import find_tool, run

# modules.* files that depmod does not regenerate but that describe the kernel itself.
KERNEL_METADATA = ("modules.order", "modules.builtin", "modules.builtin.modinfo")

_SUFFIX = re.compile(r"\.ko(\.(xz|zst|gz))?$")
_FIRMWARE = re.compile(rb"(?:^|\0)firmware=([^\0]+)")
_SOFTDEP = re.compile(rb"(?:^|\0)softdep=([^\0]+)")


@dataclass(frozen=True)
class ModuleFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_host: bool = False

    @property
    def is_everything(self) -> bool:
        return not self.exclude

    def compiled(self, setting: str, patterns: Iterable[str]) -> list[re.Pattern[str]]:
        out = []
        for p in patterns:
            try:
                out.append(re.compile(p))
            except re.error as e:
                raise BuildError(f"{setting}={p}: not a valid regular expression: {e}") from None
        return out


def module_name(path: str) -> str:
    """The name the kernel knows a module by: file name without suffixes, '-' as '_'."""
    return _SUFFIX.sub("", path.rsplit("/", 1)[-1]).replace("-", "_")


def read_dependencies(modules_dir: Path) -> dict[str, list[str]]:
    """modules.dep: module path (relative to modules_dir) -> the paths it needs."""
    dep_file = modules_dir / "modules.dep"
    if not dep_file.is_file():
        raise BuildError(f"{dep_file} is missing: the kernel package did not run depmod")
    deps: dict[str, list[str]] = {}
    for line in dep_file.read_text().splitlines():
        if ":" not in line:
            continue
        module, _, needs = line.partition(":")
        deps[module.strip()] = needs.split()
    return deps


def host_loaded_modules() -> set[str]:
    try:
        text = Path("/proc/modules").read_text()
    except OSError:
        return set()
    return {line.split()[0].replace("-", "_") for line in text.splitlines() if line.strip()}


def _relative_to_kernel(path: str) -> str:
    return path.removeprefix("kernel/")


def select_modules(
    deps: dict[str, list[str]], selection: ModuleFilter, *, prefix: str = "KernelModules",
    host_modules: set[str] | None = None, modules_dir: Path | None = None,
) -> set[str]:
    """The module paths to keep, closed over their dependencies (and soft dependencies, given the modules
    directory to read them from)."""
    exclude = selection.compiled(f"{prefix}Exclude", selection.exclude)
    include = selection.compiled(f"{prefix}Include", selection.include)
    host = (host_modules if host_modules is not None else host_loaded_modules()) if selection.include_host \
        else set()
    wanted = set()
    for path in deps:
        where = _relative_to_kernel(path)
        if (
            not any(r.search(where) for r in exclude)
            or any(r.search(where) for r in include)
            or module_name(path) in host
        ):
            wanted.add(path)
    if len(wanted) == len(deps):
        return wanted
    return _closure(deps, wanted, modules_dir)


def _closure(deps: dict[str, list[str]], wanted: set[str], modules_dir: Path | None) -> set[str]:
    """wanted plus their dependencies, and (with modules_dir) their soft dependencies: ext4 needs crc32c
    only through "softdep ext4 pre: crc32c", which modules.dep does not list."""
    by_name = {module_name(path): path for path in deps}
    aliases = read_aliases(modules_dir) if modules_dir is not None else {}
    closure: set[str] = set()
    todo = list(wanted)
    while todo:
        path = todo.pop()
        if path in closure:
            continue
        closure.add(path)
        todo.extend(d for d in deps.get(path, []) if d not in closure)
        if modules_dir is not None:
            for name in softdeps_of(modules_dir / path):
                name = name.replace("-", "_")
                for target in [by_name.get(name), *(by_name.get(m) for m in aliases.get(name, []))]:
                    if target is not None and target not in closure:
                        todo.append(target)
    return closure


def read_aliases(modules_dir: Path) -> dict[str, list[str]]:
    """modules.alias without the wildcard patterns: alias -> module names."""
    aliases: dict[str, list[str]] = {}
    path = modules_dir / "modules.alias"
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "alias" and not any(c in parts[1] for c in "*?["):
                aliases.setdefault(parts[1].replace("-", "_"), []).append(parts[2].replace("-", "_"))
    return aliases


def softdeps_of(module_file: Path) -> list[str]:
    """The modules named in a module's "softdep=pre: a b post: c" modinfo entries."""
    if not module_file.is_file():
        return []
    names = []
    for entry in _SOFTDEP.findall(_module_bytes(module_file)):
        names += [w for w in entry.decode(errors="replace").split() if not w.endswith(":")]
    return names


def _module_bytes(path: Path) -> bytes:
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".zst":
        return run([find_tool("zstd", package="zstd"), "-dc", path], what="zstd").encode("latin-1")
    return path.read_bytes()


def firmware_of(module_file: Path) -> list[str]:
    """The firmware files a module declares (its modinfo firmware= entries)."""
    return [m.decode(errors="replace") for m in _FIRMWARE.findall(_module_bytes(module_file))]


def firmware_files(root: Path, modules_dir: Path, modules: Iterable[str]) -> set[Path]:
    """The firmware files (relative to root) of `modules` that the image has."""
    out = set()
    firmware = root / "usr/lib/firmware"
    for module in modules:
        for name in firmware_of(modules_dir / module):
            for candidate in (firmware / name, *firmware.glob(f"{name}.*")):
                if candidate.is_file():
                    out.add(candidate.relative_to(root))
    return out


def remove_unselected(root: Path, modules_dir: Path, keep: set[str], deps: dict[str, list[str]]) -> int:
    """Delete the image's module files not in `keep`; depmod (a later stage) rewrites the indexes."""
    removed = 0
    for module in deps:
        if module not in keep:
            (modules_dir / module).unlink(missing_ok=True)
            removed += 1
    return removed


def stage_modules(root: Path, modules_dir: Path, keep: set[str], staging: Path) -> None:
    """Copy the `keep` modules, their firmware and the kernel's metadata into a fresh tree at `staging`."""
    version = modules_dir.name
    target = staging / "usr/lib/modules" / version
    target.mkdir(parents=True, exist_ok=True)
    for name in KERNEL_METADATA:
        if (modules_dir / name).is_file():
            shutil.copy2(modules_dir / name, target / name)
    for module in sorted(keep):
        (target / module).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(modules_dir / module, target / module)
    for firmware in firmware_files(root, modules_dir, keep):
        (staging / firmware).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / firmware, staging / firmware)
