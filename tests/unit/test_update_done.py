"""The build stage that writes /etc/.updated and /var/.updated (ConditionNeedsUpdate= units skip at boot)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from imagebuild.pipeline import system_setup, update_done

UNITS = "usr/lib/systemd/system"
USR_MTIME = 1_700_000_000_123_456_789


def image(tmp_path: Path, units: dict[str, str], programs: Sequence[str] = ("ldconfig", "journalctl")) -> Path:
    root = tmp_path / "root"
    for directory in ("etc", "var", UNITS, "usr/bin"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (root / UNITS / name).write_text(text)
    for program in programs:
        (root / "usr/bin" / program).write_text("#!/bin/sh\n")
        (root / "usr/bin" / program).chmod(0o755)
    os.utime(root / "usr", ns=(USR_MTIME, USR_MTIME))
    return root


def context(root: Path, *, fmt: str = "directory", overlay: bool = False) -> SimpleNamespace:
    return SimpleNamespace(root=root, config=SimpleNamespace(format=fmt, overlay=overlay))


SYSTEMD_UNITS = {
    "ldconfig.service": "[Unit]\nConditionNeedsUpdate=|/etc\n[Service]\nExecStart=/sbin/ldconfig -X\n",
    "systemd-journal-catalog-update.service": "[Unit]\nConditionNeedsUpdate=/var\n",
    "systemd-update-done.service": "[Unit]\nConditionNeedsUpdate=|/etc\nConditionNeedsUpdate=|/var\n",
    "systemd-journald.service": "[Service]\nExecStart=/usr/lib/systemd/systemd-journald\n",
}


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def record(context: object, argv: Sequence[str], **kwargs: object) -> str:
        calls.append(list(argv))
        return ""

    monkeypatch.setattr(update_done, "run_in_image", record)
    monkeypatch.setattr(system_setup, "run_in_image", record)
    return calls


def test_the_work_is_done_and_both_stamps_carry_the_mtime_of_usr(tmp_path: Path, ran: list[list[str]]) -> None:
    root = image(tmp_path, SYSTEMD_UNITS)
    update_done.mark_up_to_date(context(root))
    assert ran == [["ldconfig", "-X"], ["journalctl", "--update-catalog"]]
    for directory in ("etc", "var"):
        stamp = root / directory / ".updated"
        # systemd compares the file's mtime with /usr's, and reads the nanoseconds from the file.
        assert stamp.stat().st_mtime_ns == USR_MTIME
        assert f"TIMESTAMP_NSEC={USR_MTIME}\n" in stamp.read_text()


def test_an_unknown_unit_with_the_condition_keeps_its_first_boot_run(tmp_path: Path, ran: list[list[str]]) -> None:
    units = {**SYSTEMD_UNITS, "vendor-cache.service": "[Unit]\n ConditionNeedsUpdate = /etc\n"}
    root = image(tmp_path, units)
    update_done.mark_up_to_date(context(root))
    assert ran == []
    assert not (root / "etc/.updated").exists() and not (root / "var/.updated").exists()


@pytest.mark.parametrize("fmt,overlay", [("sysext", False), ("portable", False), ("disk", True)])
def test_extensions_and_overlays_get_no_stamps(tmp_path: Path, ran: list[list[str]], fmt: str,
                                               overlay: bool) -> None:
    root = image(tmp_path, SYSTEMD_UNITS)
    update_done.mark_up_to_date(context(root, fmt=fmt, overlay=overlay))
    assert ran == [] and not (root / "etc/.updated").exists()


def test_an_image_without_such_units_is_left_alone(tmp_path: Path, ran: list[list[str]]) -> None:
    root = image(tmp_path, {"systemd-journald.service": SYSTEMD_UNITS["systemd-journald.service"]})
    update_done.mark_up_to_date(context(root))
    assert ran == [] and not (root / "etc/.updated").exists()


def test_sysusers_runs_again_and_hwdb_only_when_a_hwdb_file_is_newer(tmp_path: Path, ran: list[list[str]]) -> None:
    units = {"systemd-sysusers.service": "[Unit]\nConditionNeedsUpdate=|/etc\n",
             "systemd-hwdb-update.service": "[Unit]\nConditionNeedsUpdate=/etc\n"}
    root = image(tmp_path, units, programs=("systemd-sysusers", "systemd-hwdb"))
    (root / "usr/lib/udev/hwdb.d").mkdir(parents=True)
    (root / "usr/lib/udev/hwdb.d/20-x.hwdb").write_text("")
    (root / "usr/lib/udev/hwdb.bin").write_text("compiled")
    os.utime(root / "usr/lib/udev/hwdb.d/20-x.hwdb", ns=(1, 1))
    update_done.mark_up_to_date(context(root))
    assert ran == [["systemd-sysusers"]]
    # A finalize script's hwdb file, newer than the database: compiled again.
    (root / "etc/udev/hwdb.d").mkdir(parents=True)
    (root / "etc/udev/hwdb.d/99-mine.hwdb").write_text("")
    os.utime(root / "usr/lib/udev/hwdb.bin", ns=(2, 2))
    ran.clear()
    update_done.mark_up_to_date(context(root))
    assert ran == [["systemd-hwdb", "--usr", "--strict", "update"], ["systemd-sysusers"]]
