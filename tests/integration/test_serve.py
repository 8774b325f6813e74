"""imagebuild serve: the real CLI serves the output directory over HTTP until it is stopped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import write_config

pytestmark = pytest.mark.integration


def test_serves_the_output_directory_and_stops_on_sigterm(tmp_path: Path) -> None:
    directory = write_config(tmp_path / "conf", "[Output]\nFormat=tar\nOutput=img\n")
    output = directory / "mkosi.output"
    output.mkdir()
    # The image exists, so serve does not build it.
    (output / "img").write_bytes(b"not really a tar")
    (output / "img.SHA256SUMS").write_text("sums\n")
    env = {**os.environ, "IMAGEBUILD_SERVE_PORT": "0", "IMAGEBUILD_SERVE_ADDRESS": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "imagebuild", "-C", str(directory), "serve"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 60
        while "Serving" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "serve exited before serving"
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}/"
        with urllib.request.urlopen(url + "img", timeout=30) as response:
            assert response.read() == b"not really a tar"
        with urllib.request.urlopen(url, timeout=30) as response:
            listing = response.read().decode()
        assert "img.SHA256SUMS" in listing
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "missing", timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(30)
    assert status in (0, 130)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


def test_a_bad_port_is_refused(tmp_path: Path) -> None:
    directory = write_config(tmp_path / "conf", "[Output]\nFormat=tar\nOutput=img\n")
    (directory / "mkosi.output").mkdir()
    (directory / "mkosi.output" / "img").write_bytes(b"x")
    env = {**os.environ, "IMAGEBUILD_SERVE_PORT": "http"}
    result = subprocess.run([sys.executable, "-m", "imagebuild", "-C", str(directory), "serve"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "IMAGEBUILD_SERVE_PORT=http: not a port number" in result.stderr
