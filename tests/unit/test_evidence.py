"""The badness rules, boot timings and baselines, on journal entries and properties written as systemd writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mkosi.evidence import badness, baseline, boottime
from pytest_mkosi.evidence.badness import Allowance, Hit


def test_coredump_is_found_by_its_message_id_not_its_text() -> None:
    entry = {"MESSAGE_ID": badness.COREDUMP, "MESSAGE": "Process 42 (crasher) of user 0 dumped core.",
             "COREDUMP_EXE": "/usr/bin/crasher", "COREDUMP_SIGNAL_NAME": "SIGSEGV", "COREDUMP_UNIT": "crash.service"}
    hit = badness.scan_entry(entry)
    assert hit == Hit("coredump", "/usr/bin/crasher dumped core (signal SIGSEGV)", "crash.service")
    # The same words from an ordinary service are not a coredump.
    assert badness.scan_entry({"MESSAGE": "dumped core", "_TRANSPORT": "stdout", "_SYSTEMD_UNIT": "x.service"}) is None


@pytest.mark.parametrize(("result", "rule"), [("exit-code", "failed unit"), ("core-dump", "crashed unit"),
                                              ("oom-kill", "OOM kill")])
def test_failed_units_by_result(result: str, rule: str) -> None:
    entry = {"MESSAGE_ID": badness.UNIT_RESULT, "UNIT": "web.service", "UNIT_RESULT": result,
             "MESSAGE": f"web.service: Failed with result '{result}'."}
    hit = badness.scan_entry(entry)
    assert hit is not None and (hit.rule, hit.unit) == (rule, "web.service")


@pytest.mark.parametrize("line", [
    "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009",
    "BUG: kernel NULL pointer dereference, address: 0000000000000000",
    "WARNING: CPU: 1 PID: 1 at kernel/foo.c:12 foo+0x1/0x2",
    "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]",
    "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    "Out of memory: Killed process 123 (hog) total-vm:1kB",
    "Oops: general protection fault, probably for non-canonical address 0xdead: 0000 [#1] PREEMPT SMP",
])
def test_kernel_trouble_on_the_kernel_transport_and_the_console(line: str) -> None:
    assert badness.scan_entry({"_TRANSPORT": "kernel", "MESSAGE": line}) is not None
    assert len(badness.scan_console(f"[    1.0] ok\n[    2.0] {line}\n")) == 1
    # From a service's stdout it is just text.
    assert badness.scan_entry({"_TRANSPORT": "stdout", "MESSAGE": line}) is None


def test_manager_messages_emergency_mode_and_sanitizers() -> None:
    cycle = {"_PID": "1", "MESSAGE": "sysinit.target: Found ordering cycle on foo.service/start"}
    emergency = {"MESSAGE_ID": badness.START_JOB_DONE, "UNIT": "emergency.target", "MESSAGE": "Reached target"}
    asan = {"_TRANSPORT": "stdout", "_SYSTEMD_UNIT": "t.service", "MESSAGE": "==1==ERROR: AddressSanitizer: heap-use"}
    ok = {"MESSAGE_ID": badness.START_JOB_DONE, "UNIT": "multi-user.target", "MESSAGE": "Reached target"}
    rules = [h.rule for h in badness.scan_journal([cycle, emergency, asan, ok])]
    assert rules == ["ordering cycle", "emergency mode", "sanitizer report"]
    console = badness.scan_console("You are in emergency mode. After logging in...")
    assert [h.rule for h in console] == ["emergency mode"]


def test_allowances_by_unit_rule_or_pattern() -> None:
    crash = Hit("coredump", "/usr/bin/crasher dumped core (signal SIGSEGV)", "crash.service")
    failed = Hit("failed unit", "web.service: Failed with result 'exit-code'.", "web.service")
    assert badness.unexpected([crash, failed, crash], []) == [crash, failed]
    assert badness.unexpected([crash, failed], [Allowance("crash.service")]) == [failed]
    assert badness.unexpected([crash, failed], [Allowance("coredump")]) == [failed]
    assert badness.unexpected([crash, failed], [Allowance(r"Failed with result '\w+-code'")]) == [crash]
    assert badness.unexpected([crash], [Allowance("other.service")]) == [crash]


VM_MANAGER = {"FirmwareTimestampMonotonic": "3000000", "LoaderTimestampMonotonic": "1000000",
              "KernelTimestampMonotonic": "0", "InitRDTimestampMonotonic": "2500000",
              "UserspaceTimestampMonotonic": "4000000", "FinishTimestampMonotonic": "9000000"}


def test_boot_timings_as_systemd_analyze_time() -> None:
    units = [{"Id": "slow.service", "InactiveExitTimestampMonotonic": "4100000",
              "ActiveEnterTimestampMonotonic": "7100000"},
             {"Id": "quick.service", "InactiveExitTimestampMonotonic": "5000000",
              "ActiveEnterTimestampMonotonic": "5100000"},
             {"Id": "never.service", "InactiveExitTimestampMonotonic": "0", "ActiveEnterTimestampMonotonic": "0"}]
    t = boottime.boot_timings(VM_MANAGER, units)
    assert (t.firmware, t.loader, t.kernel, t.initrd, t.userspace) == (2.0, 1.0, 2.5, 1.5, 5.0)
    assert t.total == 12.0
    assert t.slowest_units == (("slow.service", 3.0), ("quick.service", 0.1))


def test_container_boot_counts_userspace_only() -> None:
    host_clock = {"UserspaceTimestampMonotonic": "500000000", "FinishTimestampMonotonic": "501200000"}
    t = boottime.boot_timings(host_clock, container=True)
    assert (t.kernel, t.userspace, t.total) == (0, 1.2, 1.2)


def test_unfinished_boot_is_an_error() -> None:
    with pytest.raises(ValueError, match="not finished booting"):
        boottime.boot_timings({**VM_MANAGER, "FinishTimestampMonotonic": "0"})


def test_parse_show_blocks() -> None:
    text = "Id=a.service\nActiveEnterTimestampMonotonic=5\n\nId=b.service\nActiveEnterTimestampMonotonic=6\n"
    assert boottime.parse_show(text) == [{"Id": "a.service", "ActiveEnterTimestampMonotonic": "5"},
                                         {"Id": "b.service", "ActiveEnterTimestampMonotonic": "6"}]


def test_baseline_gate(tmp_path: Path) -> None:
    path = tmp_path / "boot.json"
    base = boottime.boot_timings(VM_MANAGER)
    key = baseline.baseline_key("minimal-debian-trixie-x86-64", "tcg")
    baseline.update_baseline(path, key, baseline.median_timings([base]))
    stored = baseline.load_baseline(path)
    assert set(stored) == {key} and stored[key]["total"] == 12.0
    slower = boottime.boot_timings({**VM_MANAGER, "FinishTimestampMonotonic": "13000000"})
    regressions = baseline.compare(baseline.median_timings([slower]), stored[key], tolerance=0.25)
    assert [r.phase for r in regressions] == ["userspace", "total"]
    assert "userspace" in baseline.regression_table(regressions)
    # Within the tolerance, and a KVM figure never meets a TCG baseline.
    assert baseline.compare(baseline.median_timings([base]), stored[key], tolerance=0.25) == []
    assert baseline.baseline_key("minimal-debian-trixie-x86-64", "kvm") not in stored


def test_a_broken_baseline_file_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "boot.json").write_text("{not json")
    with pytest.raises(ValueError, match="--mkosi-update-baseline"):
        baseline.load_baseline(tmp_path / "boot.json")


def test_clean_stops_are_no_failure_and_a_killed_main_process_is_a_crash() -> None:
    # Every unit that stops cleanly logs "Deactivated successfully." under its own message id, no UNIT_RESULT.
    clean = {"MESSAGE_ID": badness.UNIT_SUCCEEDED, "UNIT": "sshd@1.service", "MESSAGE": "Deactivated successfully."}
    assert badness.scan_entry(clean) is None
    segv = {"MESSAGE_ID": badness.UNIT_PROCESS_EXIT, "UNIT": "crasher.service", "EXIT_CODE": "killed",
            "EXIT_STATUS": "11", "MESSAGE": "crasher.service: Main process exited, code=killed, status=11/SEGV"}
    hit = badness.scan_entry(segv)
    assert hit is not None and (hit.rule, hit.unit) == ("crashed unit", "crasher.service")
    # Stopped by SIGTERM (systemctl stop) or exiting with a status is no crash; its result says the rest.
    assert badness.scan_entry({**segv, "EXIT_STATUS": "15"}) is None
    assert badness.scan_entry({**segv, "EXIT_CODE": "exited", "EXIT_STATUS": "11"}) is None
    assert badness.scan_entry({**segv, "EXIT_CODE": "dumped", "EXIT_STATUS": "6"}) is not None


def test_a_oneshot_service_counts_until_it_is_inactive_again() -> None:
    oneshot = {"Id": "slow-boot.service", "InactiveExitTimestampMonotonic": "4100000",
               "ActiveEnterTimestampMonotonic": "0", "InactiveEnterTimestampMonotonic": "8100000"}
    stopped_later = {"Id": "web.service", "InactiveExitTimestampMonotonic": "4000000",
                     "ActiveEnterTimestampMonotonic": "4500000", "InactiveEnterTimestampMonotonic": "60000000"}
    t = boottime.boot_timings(VM_MANAGER, [oneshot, stopped_later])
    assert t.slowest_units == (("slow-boot.service", 4.0), ("web.service", 0.5))
