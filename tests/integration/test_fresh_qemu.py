"""Fresh machines and PCR assertions under qemu, in one boot: a pytest session with the plugin's own fixtures
(--mkosi-runner=qemu, mkosi_fresh_machine, @pytest.mark.mkosi_fresh, the assertion report) on examples/disk
(OVMF, Secure Boot, swtpm) booted once under TCG. Its tests break the machine in turn and each later one sees
it clean; PCR 11 read in the guest equals the prediction from the image's UKI; compared with the prediction
for an image built with another KernelCommandLine=, the assertion fails with a report naming the differing
section. The evidence agrees with the restores: each test's journal slice starts at its restore."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.integration.pcr_images import EXTRA_WORD, disk_cmdline_variant_image
from tests.integration.ssh_images import disk_ssh_copy, disk_ssh_image
from tests.integration.test_fresh_nspawn import INNER_CONFTEST

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
# Taken before pytester points HOME elsewhere: the inner session uses this host's images and caches.
HOME = Path.home()

INNER_TESTS = """
import time
import pytest
from tests.integration.pcr_images import disk_cmdline_variant_image


def measured_phases(machine):
    # systemd-pcrphase measures the boot phases only where its TPM checks pass. Against this host's swtpm
    # 0.7.1 they fail ("TPM device not usable ... AES-128-CFB missing?"), so PCR 11 holds the UKI's
    # sections alone: predict what the machine could measure, and say so.
    result = machine.run("systemctl show -P Result systemd-pcrphase-sysinit.service")
    if result.stdout.strip() == "success" and machine.run("test -s /run/log/systemd/tpm2-measure.log").returncode == 0:
        return None
    print("note: systemd-pcrphase measured nothing here; PCR 11 is predicted without boot phases")
    return ()

def test_1_breaks_the_machine(mkosi_fresh_machine):
    m = mkosi_fresh_machine
    m.succeed("echo dirty > /root/dirty; for i in $(seq 50); do logger pytest-mkosi-filler-$i; done; rm -rf /etc")
    assert m.run("test -e /etc/os-release").returncode != 0

def test_2_sees_a_clean_machine(mkosi_fresh_machine):
    m = mkosi_fresh_machine
    m.succeed("test -e /etc/os-release && ! test -e /root/dirty; logger pytest-mkosi-mark-2")
    # The clock was set to the host's after the restore.
    assert abs(float(m.succeed("date +%s.%N")) - time.time()) < 5
    m.succeed("rm -rf /usr/lib/os-release /root/.bashrc; echo broken2 > /root/dirty")

def test_3_pcr11_is_the_prediction(mkosi_fresh_machine, mkosi_image):
    m = mkosi_fresh_machine
    m.succeed("! test -e /root/dirty")
    measured, predicted = m.pcrs()[11], mkosi_image.expected_pcrs(phases=measured_phases(m))[11]
    assert (measured.source, predicted.source) == ("sysfs", "predicted")
    assert measured == predicted

def test_4_pcr11_differs_from_another_cmdline(mkosi_machine):
    # An ordinary test after fresh ones: it, too, sees the machine as booted.
    mkosi_machine.succeed("! test -e /root/dirty")
    variant = disk_cmdline_variant_image()
    assert mkosi_machine.pcrs()[11] == variant.expected_pcrs(phases=measured_phases(mkosi_machine))[11]

@pytest.mark.mkosi_fresh
class TestMarked:
    def test_5_marked_breaks(self, mkosi_machine):
        mkosi_machine.succeed("! test -e /root/dirty && echo marked > /root/dirty")
        mkosi_machine.succeed("systemctl mask --now systemd-journald")

    def test_6_marked_sees_it_clean(self, mkosi_machine):
        mkosi_machine.succeed("! test -e /root/dirty && systemctl is-active systemd-journald")
"""


@pytest.fixture(scope="module")
def images() -> None:
    # Built (or found in the cache) before the inner session, which must only boot.
    disk_ssh_image()
    disk_cmdline_variant_image()


def test_fresh_machines_and_pcr11_in_one_boot(images: None, pytester: pytest.Pytester, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(HOME))
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    times, junit, artifacts = tmp_path / "restore-times.json", tmp_path / "junit.xml", tmp_path / "artifacts"
    monkeypatch.setenv("TIMES", str(times))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-vv", "-p", "no:xdist", f"--mkosi-config={disk_ssh_copy(HOME / '.cache')}",
        "--mkosi-args=--package=openssh-server", "--mkosi-runner=qemu", f"--junitxml={junit}",
        "--mkosi-artifacts-on=always", f"--mkosi-artifacts={artifacts}", timeout=1800)
    output = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 5 and outcomes.get("failed") == 1, output
    assert "test_4_pcr11_differs_from_another_cmdline" in output and "FAILED" in output, output
    # The report of pytest_assertrepr_compare: the section that differs and the text it should have been.
    assert "PCR 11 (sha256) measured (sysfs)" in output, output
    assert ".cmdline content DIFFERS" in output, output
    assert EXTRA_WORD in output, output
    seconds = json.loads(times.read_text())
    # Restored before tests 2-6: 1 found it as saved at boot; 4 is an ordinary test after fresh ones.
    assert len(seconds) == 5, seconds
    properties = {case.attrib["name"].split("[")[0]: {p.attrib["name"]: p.attrib["value"]
                                                       for p in case.iter("property")}
                  for case in ET.parse(junit).getroot().iter("testcase")}
    # A restore goes back into the boot the machine was saved in: no new boot is counted.
    assert properties["test_6_marked_sees_it_clean"]["mkosi_restores"] == "5", properties
    assert properties["test_6_marked_sees_it_clean"]["mkosi_boot"] == "1", properties
    # Every restore replayed the SSH session saved with the machine (transport/replay.py); none fell back.
    assert not any("mkosi_restore_fallbacks" in p for p in properties.values()), properties
    # test_2's slice starts at its restore: with test_1's journal position kept it would miss its own entry
    # (the restored journal numbers its entries again from the save), and with no position it would hold
    # the boot's.
    [directory] = [d for d in artifacts.iterdir() if "test_2_sees_a_clean_machine" in d.name]
    journal = (directory / "journal.txt").read_text()
    assert "pytest-mkosi-mark-2" in journal, journal
    assert "pytest-mkosi-filler" not in journal and "running in system mode" not in journal, journal
    print("qemu restore to SSH-ready (s):", ", ".join(f"{s:.2f}" for s in seconds))
