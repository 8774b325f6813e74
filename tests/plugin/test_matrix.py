"""Configurations as test parameters: --mkosi-config several times, --mkosi-matrix, the mkosi markers,
cells the host cannot run, and (integration) a two-cell session that builds and boots both cells."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest

from tests.helpers import MINIMAL, write_config

HOST_ARCH = {"x86_64": "x86-64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
SHOW_CELL = '''
def test_cell(mkosi_config):
    print("CELL", mkosi_config.distribution, mkosi_config.release, mkosi_config.architecture, mkosi_config.format)
'''


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "-v", "-s", *args)


def test_matrix_makes_one_test_per_cell_with_readable_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_CELL)
    result = run(pytester, f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Release=bookworm,trixie",
                 "--mkosi-matrix=Format=directory,tar")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    for release in ("bookworm", "trixie"):
        for fmt in ("directory", "tar"):
            # The id names the cell, and the test saw that cell's resolved configuration.
            assert (f"test_cell[minimal-debian-{release}-{HOST_ARCH}-{fmt}] "
                    f"CELL debian {release} {HOST_ARCH} {fmt}") in out


def test_several_configs_and_ini_paths(pytester: pytest.Pytester, tmp_path: Path) -> None:
    other = write_config(tmp_path / "other", "[Distribution]\nDistribution=debian\nRelease=bookworm\n")
    pytester.makepyfile(SHOW_CELL)
    result = run(pytester, f"--mkosi-config={MINIMAL}", f"--mkosi-config={other}")
    result.assert_outcomes(passed=2)
    assert f"test_cell[minimal-debian-trixie-{HOST_ARCH}] CELL debian trixie" in result.stdout.str()
    assert f"test_cell[other-debian-bookworm-{HOST_ARCH}] CELL debian bookworm" in result.stdout.str()
    # The ini file's paths are relative to its directory.
    shutil.copytree(MINIMAL, pytester.path / "confs" / "minimal", symlinks=True,
                    ignore=shutil.ignore_patterns("tests"))
    pytester.makeini("[pytest]\nmkosi_config = confs/minimal\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert f"test_cell[minimal-debian-trixie-{HOST_ARCH}]" in result.stdout.str()


def test_matrix_settings_are_validated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_CELL)
    result = run(pytester, f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Relase=bookworm")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown setting 'Relase'; did you mean Release" in result.stderr.str()
    result = run(pytester, f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Format=directory,floppy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mkosi-matrix=Format=directory,floppy" in result.stderr.str()
    assert "floppy" in result.stderr.str() and "Traceback" not in result.stderr.str()
    result = run(pytester, f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Release")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "expected SETTING=VALUE1,VALUE2" in result.stderr.str()


def test_markers_narrow_override_and_skip_cells(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
import pytest

@pytest.mark.mkosi(Release="trixie")
def test_trixie_only(mkosi_config):
    assert mkosi_config.release == "trixie"

@pytest.mark.mkosi(Format="disk")
def test_needs_disk(mkosi_config):
    assert str(mkosi_config.format) == "disk"

@pytest.mark.mkosi_skip("bookworm's systemd is too old for this", Release="bookworm")
def test_skips_bookworm(mkosi_config):
    assert mkosi_config.release != "bookworm"

@pytest.mark.mkosi(Release="sid")
def test_no_matching_cell(mkosi_config):
    pass
''')
    result = run(pytester, f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Release=bookworm,trixie")
    out = result.stdout.str()
    assert f"test_trixie_only[minimal-debian-trixie-{HOST_ARCH}] PASSED" in out
    assert "test_trixie_only[minimal-debian-bookworm" not in out
    assert f"test_needs_disk[minimal-debian-bookworm-{HOST_ARCH}-disk] PASSED" in out
    assert f"test_needs_disk[minimal-debian-trixie-{HOST_ARCH}-disk] PASSED" in out
    assert f"test_skips_bookworm[minimal-debian-trixie-{HOST_ARCH}] PASSED" in out
    assert "bookworm's systemd is too old for this" in out
    assert "no cell of --mkosi-config x --mkosi-matrix matches" in out
    result.assert_outcomes(passed=4, skipped=2)


def test_bad_marker_setting_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.mkosi(Distro='debian')\ndef test_x(mkosi_config):\n    pass\n")
    result = run(pytester, f"--mkosi-config={MINIMAL}")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error of that module
    out = result.stdout.str()
    assert "@pytest.mark.mkosi on test_bad_marker_setting_is_a_usage_error.py::test_x: unknown setting" in out
    assert "did you mean Distribution?" in out and "Traceback" not in out


@pytest.mark.skipif(shutil.which("qemu-system-s390x") is not None, reason="this host has qemu-system-s390x")
def test_cell_without_qemu_for_its_architecture_is_skipped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_boot(mkosi_machine):\n    pass\ndef test_config(mkosi_config):\n    pass\n")
    result = run(pytester, f"--mkosi-config={MINIMAL}", f"--mkosi-matrix=Architecture={HOST_ARCH},s390x",
                 "-k", "s390x")
    result.assert_outcomes(skipped=1, passed=1)
    out = result.stdout.str()
    assert "SKIPPED" in out and "test_boot[minimal-debian-trixie-s390x]" in out
    assert "no qemu-system-s390x on this host to boot an s390x image" in out


def test_cell_whose_mirror_cannot_be_reached_is_skipped(pytester: pytest.Pytester, tmp_path: Path) -> None:
    # Only Debian's archive is reachable from the build machines (a host that reaches Fedora's mirrors
    # would build here, so the test says so instead of failing).
    config = write_config(tmp_path / "fedora", "[Distribution]\nDistribution=fedora\nRelease=41\n")
    pytester.makepyfile("def test_image(mkosi_image):\n    pass\n")
    result = run(pytester, f"--mkosi-config={config}", f"--mkosi-cache-dir={tmp_path / 'images'}")
    if "passed" in result.stdout.str():
        pytest.skip("Fedora's mirrors are reachable from this host")
    result.assert_outcomes(skipped=1)
    assert "the fedora mirror mirrors.fedoraproject.org:443 cannot be reached from this host" in result.stdout.str()


def test_kvm_marker_skips_without_working_kvm(pytester: pytest.Pytester, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A verdict file saying the probe boot failed (as on the build machines) makes KVM tests skip.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "imagebuild").mkdir()
    (tmp_path / "imagebuild" / "kvm-verdict.json").write_text('{"6.1 QEMU emulator version 10": false}\n')
    pytester.makepyfile("import pytest\n@pytest.mark.mkosi_kvm\ndef test_kvm(mkosi_config):\n    pass\n"
                        "def test_plain(mkosi_config):\n    pass\n")
    result = run(pytester, f"--mkosi-config={MINIMAL}")
    result.assert_outcomes(skipped=1, passed=1)
    assert "needs KVM (@pytest.mark.mkosi_kvm)" in result.stdout.str()


def test_cells_get_xdist_groups(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(mkosi_config):\n    pass\ndef test_b(mkosi_config):\n    pass\n")
    result = run(pytester, f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Release=bookworm,trixie",
                 "-n", "2", "--dist=loadgroup")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    # loadgroup appends the group to the node id: the group is the cell's id.
    assert f"test_a[minimal-debian-bookworm-{HOST_ARCH}]@minimal-debian-bookworm-{HOST_ARCH}" in out
    assert f"test_b[minimal-debian-trixie-{HOST_ARCH}]@minimal-debian-trixie-{HOST_ARCH}" in out
    # Both tests of a cell ran on the same worker.
    workers = {}
    for line in out.splitlines():
        if "PASSED" in line and line.startswith("["):
            worker = line.split("]")[0].strip("[")
            cell = line.split("@")[-1].split()[0] if "@" in line else line
            workers.setdefault(cell, set()).add(worker)
    assert workers and all(len(w) == 1 for w in workers.values()), workers


@pytest.fixture(scope="module")
def matrix_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix-images")


@pytest.mark.integration
def test_two_cell_session_builds_and_boots_both(pytester: pytest.Pytester, matrix_cache: Path) -> None:
    pytester.makepyfile('''
def test_boot(mkosi_machine, mkosi_config):
    release = mkosi_machine.succeed(". /etc/os-release; echo $VERSION_CODENAME").strip()
    assert release == mkosi_config.release
''')
    result = run(pytester, f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Release=bookworm,trixie",
                 f"--mkosi-cache-dir={matrix_cache}")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert f"test_boot[minimal-debian-bookworm-{HOST_ARCH}] PASSED" in out
    assert f"test_boot[minimal-debian-trixie-{HOST_ARCH}] PASSED" in out
