"""The workspace check: a file system that answers fallocate/setxattr with EINVAL (F2FS, some FUSE file
systems, troubleshooting-log.md) is reproduced by a seccomp filter that makes those calls fail so."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imagebuild.pipeline import workspace_check
from tests.helpers import ROOT, write_config

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers of x86-64")

# x86-64 syscall numbers.
FALLOCATE = 285
SETXATTR, LSETXATTR, FSETXATTR = 188, 189, 190

# Installs a seccomp filter (no_new_privs, so no privileges needed) that fails the given syscalls with
# EINVAL, then runs the rest of the script.
SECCOMP_PRELUDE = """
import ctypes, errno, struct, sys
syscalls = [int(n) for n in sys.argv[1].split(",") if n]
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
program = [(BPF_LD_W_ABS, 0, 0, 0)]
for nr in syscalls:
    program += [(BPF_JEQ_K, 0, 1, nr), (BPF_RET_K, 0, 0, ERRNO | errno.EINVAL)]
program.append((BPF_RET_K, 0, 0, ALLOW))
raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
buffer = ctypes.create_string_buffer(raw)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()  # PR_SET_SECCOMP, FILTER
sys.argv = sys.argv[1:]
"""


def run_filtered(syscalls: list[int], script: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = SECCOMP_PRELUDE + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code, ",".join(map(str, syscalls)), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


PROBE = """
from pathlib import Path
from imagebuild.pipeline import workspace_check as w
failed = w.failed_probes(Path(sys.argv[1]), w.ALLOCATION_PROBES + w.METADATA_PROBES)
print(";".join(f"{p.name}={e.errno}" for p, e in failed))
"""


def test_a_capable_file_system_passes(tmp_path: Path) -> None:
    assert workspace_check.failed_probes(tmp_path, workspace_check.ALLOCATION_PROBES) == []
    result = run_filtered([], PROBE, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_einval_from_fallocate_and_setxattr_is_caught(tmp_path: Path) -> None:
    result = run_filtered([FALLOCATE, SETXATTR, LSETXATTR, FSETXATTR], PROBE, str(tmp_path))
    assert result.returncode == 0, result.stderr
    failed = dict(item.split("=") for item in result.stdout.strip().split(";"))
    assert failed == {"fallocate": "22", "fallocate punch-hole": "22", "fallocate zero-range": "22",
                      "extended attributes": "22", "POSIX ACLs": "22"}
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_build_stops_with_advice_before_any_work(tmp_path: Path) -> None:
    directory = write_config(tmp_path / "conf", "[Distribution]\nDistribution=debian\nRelease=trixie\n"
                             "[Output]\nFormat=disk\n")
    workspace = tmp_path / "workspace"
    script = """
    from imagebuild.cli import main
    sys.exit(main(sys.argv[1:]))
    """
    result = run_filtered([FALLOCATE], script, "-C", str(directory), f"--workspace-dir={workspace}",
                          f"--output-dir={tmp_path / 'out'}", "build")
    assert result.returncode != 0
    message = result.stderr
    assert "Traceback" not in message
    assert f"the workspace directory {workspace}" in message
    assert "fallocate punch-hole: Invalid argument" in message
    assert "Set WorkspaceDirectory=" in message
    assert "extended attributes" not in message  # only what failed is named
    assert not (tmp_path / "out").exists()
    assert list(workspace.iterdir()) == []


def test_metadata_only_for_formats_without_repart(tmp_path: Path) -> None:
    from imagebuild.config import load

    write_config(tmp_path / "conf", "[Distribution]\nDistribution=debian\nRelease=trixie\n[Output]\nFormat=tar\n"
                 f"WorkspaceDirectory={tmp_path / 'ws'}\n")
    _, images = load(["-C", str(tmp_path / "conf"), "build"])
    workspace_check.check_workspace(images[-1])
    assert (tmp_path / "ws").is_dir()


def test_filesystem_type_of_a_path() -> None:
    assert workspace_check.filesystem_type(Path("/proc/self")) == "proc"
