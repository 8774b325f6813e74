"""Value types of settings and the parsers that turn one textual value into them.

Parsers raise ValueProblem; the caller knows the file, line and setting and turns it into a ConfigError.
"""

from __future__ import annotations

import enum
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, TypeVar

from imagebuild.config.enums import COMPRESSION_ALIASES, Compression, ConfigFeature, KeySourceType
from imagebuild.config.errors import ValueProblem


@dataclass(frozen=True)
class Ctx:
    """Where a value comes from: relative paths resolve against base; where is "file:line" or similar."""

    base: Path
    where: str


@dataclass(frozen=True)
class TreeSpec:
    """A SOURCE[:TARGET] pair; target None means the root of the image (or the default mount point)."""

    source: Path
    target: Path | None

    def __str__(self) -> str:
        return f"{self.source}:{self.target}" if self.target else str(self.source)


@dataclass(frozen=True)
class QemuDrive:
    id: str
    size: int
    directory: Path | None
    options: str | None


@dataclass(frozen=True)
class KeySource:
    type: KeySourceType = KeySourceType.file
    source: str = ""

    def __str__(self) -> str:
        return f"{self.type}:{self.source}" if self.source else str(self.type)


@dataclass(frozen=True)
class RootPassword:
    """The root password; hashed says it is already a crypt(3) hash (the hashed: prefix)."""

    value: str
    hashed: bool

    def __repr__(self) -> str:
        # Keep secrets out of tracebacks and debug output.
        return f"RootPassword(value='***', hashed={self.hashed})"


# VSock CIDs that are not numbers, encoded as mkosi does (negative numbers are never valid CIDs).
VSOCK_CID_AUTO = -1
VSOCK_CID_HASH = -2

DEFAULT_TOOLS_TREE: Literal["default"] = "default"

_TRUE = frozenset({"1", "yes", "y", "true", "t", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})
BOOLEAN_ACCEPTED = "1, yes, true, on / 0, no, false, off (any case)"


def try_boolean(value: str) -> bool | None:
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return None


def parse_boolean(value: str, ctx: Ctx | None = None) -> bool:
    b = try_boolean(value)
    if b is None:
        raise ValueProblem(f"{value!r} is not a boolean", BOOLEAN_ACCEPTED)
    return b


def parse_feature(value: str, ctx: Ctx | None = None) -> ConfigFeature:
    if value in ConfigFeature.__members__:
        return ConfigFeature(value)
    b = try_boolean(value)
    if b is None:
        raise ValueProblem(f"{value!r} is neither a boolean nor auto", f"auto, {BOOLEAN_ACCEPTED}")
    return ConfigFeature.enabled if b else ConfigFeature.disabled


E = TypeVar("E", bound=enum.StrEnum)


def parse_enum(enum_type: type[E], value: str) -> E:
    try:
        return enum_type(value)
    except ValueError:
        accepted = ", ".join(m.value for m in enum_type)
        raise ValueProblem(f"{value!r} is not a valid value", accepted) from None


def parse_compression(value: str, ctx: Ctx | None = None) -> Compression:
    if value in COMPRESSION_ALIASES:
        return COMPRESSION_ALIASES[value]
    try:
        return Compression(value)
    except ValueError:
        pass
    b = try_boolean(value)
    if b is None:
        raise ValueProblem(
            f"{value!r} is neither a compression algorithm nor a boolean",
            f"{', '.join(c.value for c in Compression)}, or a boolean (yes means zstd)",
        )
    return Compression.zstd if b else Compression.none


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([KMG]?)")


def parse_bytes(value: str, ctx: Ctx | None = None) -> int:
    """A size in bytes with optional K, M or G suffix, rounded up to a multiple of 4096 as mkosi does."""
    m = _SIZE.fullmatch(value.strip())
    if not m:
        raise ValueProblem(f"{value!r} is not a size", "a number of bytes, optionally with K, M or G: 512M")
    factor = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]
    # Exact arithmetic: a float would overflow (or round) on a long string of digits.
    result = math.ceil(Fraction(m.group(1)) * factor)
    if result <= 0:
        raise ValueProblem(f"{value!r} is not a positive size", "a size greater than zero")
    return result + (-result % 4096)


_QEMU_SIZE = re.compile(r"\d+(?:\.\d+)?[KMGTkmgt]?")


def parse_qemu_size(value: str, ctx: Ctx | None = None) -> str:
    # v22 keeps QemuMem= as the text given (its JSON shows "1G"); check it is something qemu -m takes.
    if not _QEMU_SIZE.fullmatch(value):
        raise ValueProblem(f"{value!r} is not a memory size", "a number with an optional K, M, G or T suffix")
    return value


def parse_positive_int_text(value: str, ctx: Ctx | None = None) -> str:
    if not value.isdigit() or int(value) <= 0:
        raise ValueProblem(f"{value!r} is not a positive whole number", "1, 2, 4, ...")
    return value


def parse_int(value: str, ctx: Ctx | None = None) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueProblem(f"{value!r} is not a whole number", "a whole number such as 3") from None


def parse_nonnegative_int(value: str, ctx: Ctx | None = None) -> int:
    n = parse_int(value)
    if n < 0:
        raise ValueProblem(f"{value!r} is negative", "a whole number of zero or more")
    return n


def parse_sector_size(value: str, ctx: Ctx | None = None) -> int:
    n = parse_int(value)
    if n < 512 or n > 4096 or n & (n - 1):
        raise ValueProblem(f"{value!r} is not a valid sector size", "512, 1024, 2048 or 4096")
    return n


def parse_vsock_cid(value: str, ctx: Ctx | None = None) -> int:
    if value == "auto":
        return VSOCK_CID_AUTO
    if value == "hash":
        return VSOCK_CID_HASH
    accepted = "hash, auto, or a number from 3 to 4294967294"
    try:
        cid = int(value, 0)
    except ValueError:
        raise ValueProblem(f"{value!r} is not a VSock connection ID", accepted) from None
    if not 3 <= cid < 0xFFFFFFFF:
        raise ValueProblem(f"{cid} is outside the range of VSock connection IDs", accepted)
    return cid


def format_vsock_cid(cid: int) -> str:
    return {VSOCK_CID_AUTO: "auto", VSOCK_CID_HASH: "hash"}.get(cid, str(cid))


_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def parse_seed(value: str, ctx: Ctx | None = None) -> str | None:
    """None stands for "random"; otherwise the UUID in its canonical form."""
    if value == "random":
        return None
    v = value.strip("{}").replace("urn:uuid:", "")
    if not _UUID.fullmatch(v):
        accepted = "random, or a UUID such as 0e4f0d16-4bd3-4d76-9b5a-0f51b3c4f1d0"
        raise ValueProblem(f"{value!r} is not a UUID", accepted)
    h = v.replace("-", "").lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_valid_filename(value: str) -> bool:
    v = value.strip()
    # 255 bytes is NAME_MAX on Linux file systems; longer names cannot exist (and ".conf" is added to profiles).
    return v not in (".", "..") and "/" not in v and "\0" not in v and len(v.encode()) <= 250


def parse_filename(value: str, ctx: Ctx | None = None) -> str:
    if not is_valid_filename(value):
        accepted = "a name without '/' (OutputDirectory= sets the directory)"
        raise ValueProblem(f"{value!r} is not a file name", accepted)
    return value


def parse_profile(value: str, ctx: Ctx | None = None) -> str:
    if not is_valid_filename(value):
        accepted = "the name of a file or directory in mkosi.profiles/"
        raise ValueProblem(f"{value!r} is not a profile name", accepted)
    return value


def parse_string(value: str, ctx: Ctx | None = None) -> str:
    return value


def parse_root_password(value: str, ctx: Ctx | None = None) -> RootPassword:
    value = value.strip()
    hashed = value.startswith("hashed:")
    return RootPassword(value.removeprefix("hashed:"), hashed)


def parse_key_source(value: str, ctx: Ctx | None = None) -> KeySource:
    kind, _, source = value.partition(":")
    try:
        return KeySource(KeySourceType(kind), source)
    except ValueError:
        accepted = "file, or engine:NAME (e.g. engine:pkcs11)"
        raise ValueProblem(f"{value!r} is not a key source", accepted) from None


def parse_environment(item: str, ctx: Ctx | None = None) -> dict[str, str]:
    # A bare NAME passes the variable through from the environment imagebuild runs in.
    key, eq, value = item.partition("=")
    key = key.strip()
    if not key:
        raise ValueProblem(f"{item!r} has no variable name", "NAME=VALUE or NAME")
    return {key: value.strip() if eq else os.environ.get(key, "")}


def _read_credential(path: Path) -> str:
    # As in mkosi: an executable file provides the credential on its standard output.
    if os.access(path, os.X_OK):
        import subprocess

        try:
            return subprocess.run([path], capture_output=True, text=True, check=True, timeout=300).stdout
        except (OSError, subprocess.SubprocessError) as e:
            raise ValueProblem(f"running the credential program {path} failed: {e}") from None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueProblem(f"cannot read the credential file {path}: {e}") from None


def parse_credential(item: str, ctx: Ctx | None = None) -> dict[str, str]:
    key, eq, value = item.partition("=")
    key = key.strip()
    if not key:
        raise ValueProblem(f"{item!r} has no credential name", "NAME=VALUE")
    if not eq and ctx is not None:
        # NAME alone may be a file (NAME is the credential) or a directory of them (mkosi.credentials/).
        path = Path(os.path.expanduser(key))
        path = path if path.is_absolute() else ctx.base / path
        if path_exists(path) and path.is_dir():
            return {p.name: _read_credential(p) for p in sorted(path.iterdir()) if not p.is_dir()}
        if path_exists(path):
            return {path.name: _read_credential(path)}
    return {key: value.strip()}


def secret_problem(path: Path) -> str | None:
    """A message if others may access the secret file at path (mkosi refuses world access)."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o007:
        return (
            f"{path} holds a secret but its mode {mode:04o} lets other users access it; "
            f"restrict it to its owner, e.g. chmod 600 {path}"
        )
    return None


def resolve_path(
    value: str,
    ctx: Ctx,
    *,
    required: bool = True,
    secret: bool = False,
) -> Path:
    """An absolute path: ~ and $VARIABLES expanded, relative paths taken from the config directory."""
    if not value:
        raise ValueProblem("the path is empty", "a path")
    if "\0" in value:
        raise ValueProblem(f"{value!r} contains a NUL character", "a path")
    expanded = os.path.expanduser(os.path.expandvars(value))
    path = Path(expanded)
    if not path.is_absolute():
        path = ctx.base / path
    try:
        if required and not path.exists():
            raise ValueProblem(f"{path} does not exist", "the path of an existing file or directory")
        path = Path(os.path.realpath(path))
    except OSError as e:
        raise ValueProblem(f"{value!r} cannot be used as a path: {e.strerror}") from None
    if secret and (problem := secret_problem(path)):
        raise ValueProblem(problem)
    return path


def path_exists(path: Path) -> bool:
    """Path.exists() that says no, instead of raising, for names too long or containing NUL."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def parse_tree(value: str, ctx: Ctx, *, required: bool = False, absolute_target: bool = True) -> TreeSpec:
    src, sep, tgt = value.partition(":")
    source = resolve_path(src, ctx, required=required)
    if not sep:
        return TreeSpec(source, None)
    if not tgt:
        raise ValueProblem(f"{value!r} has an empty target after ':'", "SOURCE or SOURCE:TARGET")
    target = Path(tgt)
    # Targets of trees copied into the image are always absolute paths inside the image.
    if absolute_target and not target.is_absolute():
        target = Path("/") / target
    return TreeSpec(source, target)
