"""`assert mkosi_rebuild == mkosi_image`: bit-identical rebuilds, and the report when they are not."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from tests.helpers import MINIMAL, write_config

HOST_ARCH = {"x86_64": "x86-64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
REBUILD_TEST = '''
def test_reproducible(mkosi_rebuild, mkosi_image):
    assert mkosi_rebuild.path != mkosi_image.path
    assert mkosi_rebuild == mkosi_image
'''


@pytest.mark.integration
def test_minimal_tar_and_directory_rebuild_bit_identical(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(REBUILD_TEST)
    result = pytester.runpytest_subprocess(
        f"--mkosi-config={MINIMAL}", "--mkosi-matrix=Format=directory,tar",
        "--mkosi-args=--source-date-epoch=1700000000",
        f"--mkosi-cache-dir={tmp_path / 'images'}", "-p", "no:cacheprovider", "-v", timeout=1500)
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert f"test_reproducible[minimal-debian-trixie-{HOST_ARCH}-directory] PASSED" in out
    assert f"test_reproducible[minimal-debian-trixie-{HOST_ARCH}-tar] PASSED" in out


@pytest.mark.integration
def test_postinst_writing_the_time_fails_naming_the_file(pytester: pytest.Pytester, tmp_path: Path) -> None:
    config = write_config(tmp_path / "clock", "[Distribution]\nDistribution=debian\nRelease=trixie\n"
                          "[Output]\nFormat=directory\n[Content]\nSourceDateEpoch=1700000000\n")
    script = config / "mkosi.postinst"
    script.write_text('#!/bin/sh\ndate +%s.%N > "$BUILDROOT/etc/build-time"\n')
    script.chmod(0o755)
    pytester.makepyfile(REBUILD_TEST)
    result = pytester.runpytest_subprocess(f"--mkosi-config={config}", f"--mkosi-cache-dir={tmp_path / 'images'}",
                                           "-p", "no:cacheprovider", timeout=900)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the builds differ in 1 file" in out
    assert "/etc/build-time: content" in out
