"""imagebuild.launch.nspawn_cgroup: each container's own cgroup, below the caller's, in the hierarchies
systemd-nspawn uses (found from /proc/self/cgroup and /proc/self/mountinfo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagebuild.launch.nspawn_cgroup import MachineCgroup, machine_cgroup, remove_tree

HYBRID_CGROUP = "9:name=systemd:/ci/job\n4:memory:/x\n1:cpu:/\n0::/ci/job\n"
PURE_V2_CGROUP = "0::/user.slice/session-1.scope\n"


def mountinfo(base: Path, *, unified_root: str = "/") -> str:
    return (
        f"30 25 0:26 / {base}/cgroup rw - tmpfs tmpfs rw\n"
        f"31 30 0:27 / {base}/cgroup/memory rw - cgroup cgroup rw,memory\n"
        f"32 30 0:28 / {base}/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
        f"33 30 0:29 {unified_root} {base}/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    )


def make_tree(base: Path, *relative: str) -> None:
    for path in relative:
        (base / "cgroup" / path).mkdir(parents=True)


def test_hybrid_host_gets_a_cgroup_in_name_systemd_and_the_unified_hierarchy(tmp_path: Path) -> None:
    make_tree(tmp_path, "systemd/ci/job", "unified/ci/job")
    found = machine_cgroup("m1", proc_cgroup=HYBRID_CGROUP, mountinfo=mountinfo(tmp_path))
    assert found == MachineCgroup((tmp_path / "cgroup/systemd/ci/job/imagebuild-m1",
                                   tmp_path / "cgroup/unified/ci/job/imagebuild-m1"))


def test_a_mount_of_part_of_the_hierarchy_and_a_pure_v2_host(tmp_path: Path) -> None:
    make_tree(tmp_path, "unified/session-1.scope")
    # The mount shows /user.slice only (a cgroup namespace or a bind mount): paths are taken below it.
    found = machine_cgroup("m2", proc_cgroup=PURE_V2_CGROUP, mountinfo=mountinfo(tmp_path, unified_root="/user.slice"))
    assert found == MachineCgroup((tmp_path / "cgroup/unified/session-1.scope/imagebuild-m2",))


def test_no_cgroup_where_none_can_be_made(tmp_path: Path) -> None:
    # No hierarchy mounted at all, or the parent missing (not writable): nspawn's own split is used.
    assert machine_cgroup("m", proc_cgroup=HYBRID_CGROUP, mountinfo="") is None
    assert machine_cgroup("m", proc_cgroup=HYBRID_CGROUP, mountinfo=mountinfo(tmp_path)) is None


def test_create_and_remove_a_tree_deepest_first(tmp_path: Path) -> None:
    cgroup = MachineCgroup((tmp_path / "a" / "imagebuild-m", tmp_path / "b" / "imagebuild-m"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cgroup.create()
    (cgroup.directories[0] / "payload" / "system.slice" / "x.service").mkdir(parents=True)
    cgroup.remove()
    assert not any(d.exists() for d in cgroup.directories)
    remove_tree(tmp_path / "missing")  # nothing there: nothing to do


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/sys/fs/cgroup").is_dir(), reason="needs root and cgroupfs")
def test_on_this_host_a_process_enters_its_own_cgroup() -> None:
    """The real thing: made, entered by a child (as the supervisor's preexec does), removed."""
    import subprocess

    cgroup = machine_cgroup(f"unit-test-{os.getpid()}")
    assert cgroup is not None
    cgroup.create()
    try:
        child = subprocess.run(["cat", "/proc/self/cgroup"], preexec_fn=cgroup.enter, capture_output=True,
                               text=True, check=True)
        assert f"/imagebuild-unit-test-{os.getpid()}\n" in child.stdout
    finally:
        cgroup.remove()
    assert not any(d.exists() for d in cgroup.directories)
