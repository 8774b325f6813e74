"""SyncScripts= (mkosi.sync) in a real Debian build: run first, on the host's side, on the real sources.

The sync script writes into the build sources (the configuration directory, BuildSourcesEphemeral=yes
notwithstanding) and into the extra tree that the build copies in afterwards, so the image shows both that
it ran before the image was put together and the environment it had.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

CONF = """\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format=directory
ImageId=synced

[Content]
Bootable=no
BuildSourcesEphemeral=yes
ExtraTrees=extra
Environment=FROM_SETTING=yes
"""

SYNC = """\
#!/bin/sh
set -e
echo "$*" > extra/sync-args
env | sort > extra/sync.env
id -u > extra/sync-uid
pwd > extra/sync-cwd
cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > extra/sync-net
if touch /etc/imagebuild-sync-host-write 2>/dev/null; then echo writable > extra/host; fi
"""


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    base = tmp_path_factory.mktemp("sync")
    project = write_config(base / "project", CONF)
    (project / "extra").mkdir()
    (project / "mkosi.sync").write_text(textwrap.dedent(SYNC))
    (project / "mkosi.sync").chmod(0o755)
    result = imagebuild("-C", str(project), f"--output-dir={base}/out", "build", timeout=900)
    assert result.returncode == 0, result.stderr
    return project, base / "out/synced", result.stderr


def test_the_sync_script_ran_before_the_image_was_put_together(built: tuple[Path, Path, str]) -> None:
    project, image, log = built
    assert (image / "sync-args").read_text() == "final\n"
    # On the real sources: BuildSourcesEphemeral= does not apply to sync scripts.
    assert (project / "extra/sync-args").read_text() == "final\n"
    assert (image / "sync-cwd").read_text() == "/work/src\n"
    assert log.index("run sync scripts") < log.index("install the distribution")


def test_the_sync_scripts_environment(built: tuple[Path, Path, str]) -> None:
    _, image, _ = built
    env = env_file(image / "sync.env")
    assert (env["DISTRIBUTION"], env["RELEASE"], env["ARCHITECTURE"]) == ("debian", "trixie", "x86-64")
    assert env["SRCDIR"] == "/work/src" and env["MKOSI_CONFIG"] == "/work/config.json"
    assert env["CACHED"] == "0" and env["FROM_SETTING"] == "yes"
    assert env["MKOSI_UID"] == (image / "sync-uid").read_text().strip()
    # Nothing of an image: no $BUILDROOT, no helpers such as mkosi-chroot on $PATH.
    assert "BUILDROOT" not in env and "CHROOT_SCRIPT" not in env
    assert "script-helpers" not in env["PATH"]


def test_the_sync_script_has_the_network_and_a_read_only_host(built: tuple[Path, Path, str]) -> None:
    _, image, _ = built
    assert (image / "sync-net").read_text().split() != ["lo"]
    assert not (image / "host").exists()
    assert not Path("/etc/imagebuild-sync-host-write").exists()


def test_a_failing_sync_script_stops_the_build_before_any_install(tmp_path: Path) -> None:
    project = write_config(tmp_path / "project", CONF)
    (project / "extra").mkdir()
    (project / "mkosi.sync").write_text("#!/bin/sh\necho 'cannot pull'\nexit 3\n")
    (project / "mkosi.sync").chmod(0o755)
    result = imagebuild("-C", str(project), f"--output-dir={tmp_path}/out", "build", timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"the sync script {project}/mkosi.sync failed" in result.stderr
    assert "exit status 3" in result.stderr and "cannot pull" in result.stderr
    assert "install the distribution" not in result.stderr
