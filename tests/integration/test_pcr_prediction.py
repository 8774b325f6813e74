"""PCR 11 predictions checked against systemd 257 itself (the tools tree): systemd-measure on raw sections,
ukify's own measurement of a UKI it builds, and systemd-pcrextend extending a real (software) TPM.

The default tools tree is cached per machine, so only the first session pays for building it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.boot.keys import make_key_pair, write_key_pair
from imagebuild.boot.pcr import BANKS, BOOTED_PHASES, predict_pcr11, predict_pcr11_from_sections
from imagebuild.boot.pcr.policy import signed_policies, unsigned_phase_paths
from imagebuild.boot.tpm_eventlog import replay
from imagebuild.boot.tpm_measure_log import parse_measure_log
from imagebuild.boot.uki import pcr_signing_arguments
from imagebuild.config import load
from imagebuild.pipeline.subbuilds import tools_tree_for
from imagebuild.tools.run import tools_tree_wrapper
from imagebuild.tools.tools_tree import run_tool, tool
from tests.helpers import write_config

pytestmark = pytest.mark.integration

SYSTEMD_MEASURE = "/usr/lib/systemd/systemd-measure"
# systemd-measure's default phase paths: from entering the initrd to the booted system.
PHASE_PATHS = [BOOTED_PHASES[:n] for n in range(1, len(BOOTED_PHASES) + 1)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    conf = write_config(tmp_path_factory.mktemp("pcr") / "conf",
                        "[Distribution]\nDistribution=debian\nRelease=trixie\n[Host]\nToolsTree=default\n")
    _, images = load(["-C", str(conf), "build"])
    tree = tools_tree_for(images[-1])
    assert tree is not None
    return tree


def measured_by_systemd(output: str) -> dict[tuple[str, ...], dict[str, str]]:
    """systemd-measure's text output ("# PCR[11] Phase <a:b>" then "11:bank=hex" lines) by phase path."""
    values: dict[tuple[str, ...], dict[str, str]] = {}
    phase: tuple[str, ...] = ()
    for line in output.splitlines():
        if m := re.fullmatch(r"# PCR\[11\] Phase <(.*)>", line.strip()):
            phase = tuple(m.group(1).split(":"))
        elif m := re.fullmatch(r"11:(\w+)=([0-9a-f]+)", line.strip()):
            values.setdefault(phase, {})[m.group(1)] = m.group(2)
    return values


def test_every_section_and_bank_against_systemd_measure(tree: Path, tmp_path: Path) -> None:
    sections = {
        ".linux": b"MZ not really a kernel", ".osrel": b"ID=debian\nVERSION_ID=13\n", ".cmdline": b"console=ttyS0",
        ".initrd": os.urandom(5000), ".ucode": b"microcode", ".splash": b"BM splash", ".dtb": b"\xd0\x0d\xfe\xed",
        ".uname": b"6.12.12-amd64", ".sbat": b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim\n",
        ".pcrpkey": b"-----BEGIN PUBLIC KEY-----\n",
    }
    argv: list[str | Path] = [SYSTEMD_MEASURE, "calculate", "--json=short"]
    for name, content in sections.items():
        (tmp_path / name[1:]).write_bytes(content)
        argv.append(f"--{name[1:]}={tmp_path / name[1:]}")
    result = json.loads(run_tool(tree, argv))
    for bank in BANKS:
        for entry in result[bank]:
            phases = entry["phase"].split(":")
            assert predict_pcr11_from_sections(sections, phases).hex(bank) == entry["hash"], (bank, phases)
    assert {tuple(e["phase"].split(":")) for e in result["sha256"]} == set(PHASE_PATHS)


def test_a_uki_built_by_ukify(tree: Path, tmp_path: Path) -> None:
    # A real PE file stands in for the kernel (ukify then merges its .sbat); ukify measures with
    # systemd-measure on the sections it embeds, which our reader takes back out of the PE file.
    kernel = tree / "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
    files = {"os-release": b"ID=debian\n", "initrd": os.urandom(3000), "ucode": b"ucode", "dtb": b"\xd0\x0d\xfe\xed",
             "pcrpkey": b"-----BEGIN PUBLIC KEY-----\n"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    output = run_tool(tree, [
        tool(tree, "ukify"), "build", f"--linux={kernel}", f"--os-release=@{tmp_path / 'os-release'}",
        "--cmdline=console=ttyS0 quiet", "--uname=6.12.12-amd64", f"--initrd={tmp_path / 'initrd'}",
        f"--microcode={tmp_path / 'ucode'}", f"--devicetree={tmp_path / 'dtb'}", f"--pcrpkey={tmp_path / 'pcrpkey'}",
        "--efi-arch=x64", "--measure", f"--output={tmp_path / 'test.efi'}",
    ])
    by_ukify = measured_by_systemd(output)
    assert set(by_ukify) == set(PHASE_PATHS), output
    for phases, values in by_ukify.items():
        prediction = predict_pcr11(tmp_path / "test.efi", phases)
        assert {bank: prediction.hex(bank) for bank in values} == values, phases
    labels = [m.label for m in predict_pcr11(tmp_path / "test.efi").measurements if m.kind == "section-content"]
    assert labels == [f".{n} content" for n in ("linux", "osrel", "cmdline", "initrd", "ucode", "dtb", "uname",
                                                 "sbat", "pcrpkey")]


def _free_port_pair() -> int:
    """A loopback port free together with the next one (the swtpm TCTI finds the control port there)."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two adjacent free loopback ports")


@pytest.fixture
def software_tpm(tree: Path, tmp_path: Path) -> Iterator[str]:
    """A swtpm on loopback; yields the TCTI string systemd and tpm2-tools take."""
    port = _free_port_pair()
    (tmp_path / "tpm").mkdir()
    process = subprocess.Popen(
        [*tools_tree_wrapper(tree), "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={tmp_path / 'tpm'}",
         "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
         "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
         "--flags", "not-need-init,startup-clear"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "swtpm did not start"
                time.sleep(0.1)
        yield f"swtpm:host=127.0.0.1,port={port}"
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=10)


def test_systemd_pcrextend_log_replays_to_the_tpm(tree: Path, tmp_path: Path, software_tpm: str) -> None:
    log = tmp_path / "tpm2-measure.log"
    env = {"SYSTEMD_FORCE_MEASURE": "1", "SYSTEMD_MEASURE_LOG_USERSPACE": str(log)}
    for phase in BOOTED_PHASES:
        run_tool(tree, ["/usr/lib/systemd/systemd-pcrextend", f"--tpm2-device={software_tpm}", phase], env=env)
    events = parse_measure_log(log.read_text())
    assert [(e.pcr, e.description) for e in events] == [(11, p) for p in BOOTED_PHASES]
    read = run_tool(tree, ["tpm2_pcrread", "-T", software_tpm, "sha256:11"])
    in_tpm = re.search(r"11\s*:\s*0x([0-9A-F]+)", read)
    assert in_tpm, read
    assert replay(events, "sha256")[11].hex() == in_tpm.group(1).lower()
    # The phases alone, from an empty PCR 11: what the prediction's phase part gives.
    assert predict_pcr11_from_sections({}, BOOTED_PHASES, ["sha256"]).hex("sha256") == in_tpm.group(1).lower()


def test_sign_expected_pcr_signs_the_predicted_values(tree: Path, tmp_path: Path) -> None:
    # The builder's ukify options for SignExpectedPcr=; the .pcrsig must sign our prediction of every
    # phase path (and .pcrpkey, derived from the key by ukify, is part of what is measured).
    key, certificate = tmp_path / "mkosi.key", tmp_path / "mkosi.crt"
    write_key_pair(make_key_pair("pcr test", 30), key, certificate, force=False)
    (tmp_path / "os-release").write_text("ID=debian\n")
    run_tool(tree, [
        tool(tree, "ukify"), "build", f"--linux={tree / 'usr/lib/systemd/boot/efi/systemd-bootx64.efi'}",
        f"--os-release=@{tmp_path / 'os-release'}", "--cmdline=quiet", "--uname=6.12.12-amd64", "--efi-arch=x64",
        f"--output={tmp_path / 'signed.efi'}", *pcr_signing_arguments(key),
    ])
    uki = tmp_path / "signed.efi"
    assert ".pcrpkey content" in [m.label for m in predict_pcr11(uki).measurements]
    assert len(signed_policies(uki)) == len(PHASE_PATHS)
    assert unsigned_phase_paths(uki, PHASE_PATHS) == []
