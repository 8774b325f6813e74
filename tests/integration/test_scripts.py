"""Prepare, build, post-install and finalize scripts in real Debian trixie builds.

One successful build checks many things at once: the environment of each kind of script, BuildPackages=
in an overlay that never reaches the image, $DESTDIR copied into the image, .chroot scripts, the helpers
on PATH, the read-only host, network only where allowed, ephemeral build sources. A second build
would cost another Debian install, so failures, WithNetwork= and persistent sources run real scripts in the
real sandbox on a bare root directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from imagebuild.config import load
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.pipeline import scripts
from imagebuild.tools.mounts import mounts_below
from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

CONF = """\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format=directory
ImageId=scripted

[Content]
BuildPackages=make
BuildSourcesEphemeral=yes
Environment=FROM_SETTING=yes SHARED=setting
WithTests=no
SourceDateEpoch=1700000000
"""

SCRIPTS = {
    "mkosi.env": "FROM_FILE=yes\nSHARED=file\n",
    "Makefile": "install:\n\tmkdir -p $(DESTDIR)/usr/bin\n\tinstall -m 0755 hello.sh $(DESTDIR)/usr/bin/hello\n",
    "hello.sh": "#!/bin/sh\necho hello from the build\n",
    "mkosi.prepare": """\
        #!/bin/sh
        set -e
        env | sort > "$BUILDROOT/prepare-$1.env"
        if [ "$1" = final ]; then
            mkosi-install file
            cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > "$BUILDROOT/prepare-net"
        else
            test -x "$BUILDROOT/usr/bin/make"
        fi
        """,
    "mkosi.build.chroot": """\
        #!/bin/sh
        set -e
        [ "$container" = mkosi ]
        env | sort > "$DESTDIR/build.env"
        echo "$@" > "$DESTDIR/build-args"
        make -C "$SRCDIR" install DESTDIR="$DESTDIR"
        echo changed > "$SRCDIR/written-by-build"
        echo overlay > /overlay-only
        """,
    "mkosi.postinst.chroot": """\
        #!/bin/sh
        set -e
        echo "$container $*" > /postinst-ran
        test -x /usr/bin/hello
        """,
    "mkosi.finalize": """\
        #!/bin/sh
        set -e
        env | sort > "$BUILDROOT/finalize.env"
        cp "$MKOSI_CONFIG" "$BUILDROOT/config.json"
        cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > "$BUILDROOT/finalize-net"
        if touch /etc/imagebuild-script-host-write 2>/dev/null; then echo writable > "$BUILDROOT/host"; fi
        useradd --create-home scriptuser
        mkosi-chroot sh -c 'echo "$container $SRCDIR" > /chroot-ran'
        mkosi-as-caller id -u > "$BUILDROOT/caller-uid"
        git config --get-all safe.directory > "$BUILDROOT/git-safe"
        dpkg -s dpkg | grep '^Status:' > "$BUILDROOT/dpkg-status"
        """,
}


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def make_project(directory: Path, scripts: dict[str, str]) -> Path:
    write_config(directory, CONF)
    for name, text in scripts.items():
        path = directory / name
        path.write_text(textwrap.dedent(text))
        if name.startswith("mkosi.") and name != "mkosi.env":
            path.chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    base = tmp_path_factory.mktemp("scripts")
    project = make_project(base / "project", SCRIPTS)
    out = base / "out"
    result = imagebuild("-C", str(project), f"--output-dir={out}", "build", "one", "two", timeout=400)
    assert result.returncode == 0, result.stderr
    return project, out / "scripted", result.stderr


def test_build_packages_stay_in_the_overlay(built: tuple[Path, Path, str]) -> None:
    _, image, _ = built
    assert not (image / "usr/bin/make").exists()
    assert not (image / "overlay-only").exists()
    assert not (image / "prepare-build.env").exists()
    assert (image / "prepare-final.env").exists()


def test_build_output_and_mkosi_install_reach_the_image(built: tuple[Path, Path, str]) -> None:
    _, image, _ = built
    assert (image / "usr/bin/hello").read_text() == "#!/bin/sh\necho hello from the build\n"
    assert (image / "build-args").read_text() == "one two\n"
    # Installed by mkosi-install from the prepare script.
    assert (image / "usr/bin/file").exists()


def test_chroot_scripts_and_helpers(built: tuple[Path, Path, str]) -> None:
    _, image, _ = built
    assert (image / "postinst-ran").read_text() == "mkosi final\n"
    assert (image / "chroot-ran").read_text() == "mkosi /work/src\n"
    # The mount points mkosi-chroot needed are gone again.
    assert not (image / "work").exists()
    assert "scriptuser:" in (image / "etc/passwd").read_text()
    assert (image / "home/scriptuser").is_dir()
    assert (image / "caller-uid").read_text().strip().isdigit()
    assert (image / "git-safe").read_text() == "*\n"
    assert (image / "dpkg-status").read_text() == "Status: install ok installed\n"


def test_environment(built: tuple[Path, Path, str]) -> None:
    _, image, _ = built
    prepare = env_file(image / "prepare-final.env")
    build = env_file(image / "build.env")
    finalize = env_file(image / "finalize.env")
    for env in (prepare, build, finalize):
        assert (env["DISTRIBUTION"], env["RELEASE"], env["ARCHITECTURE"]) == ("debian", "trixie", "x86-64")
        assert env["SRCDIR"] == "/work/src"
        assert env["SOURCE_DATE_EPOCH"] == "1700000000"
        assert env["IMAGE_ID"] == "scripted"
        assert (env["FROM_SETTING"], env["FROM_FILE"], env["SHARED"]) == ("yes", "yes", "setting")
        assert env["MKOSI_UID"].isdigit()
    assert (prepare["WITH_TESTS"], prepare["WITH_NETWORK"], prepare["WITH_DOCS"]) == ("0", "0", "1")
    assert prepare["CHROOT_SCRIPT"] == "/work/prepare"
    assert "DESTDIR" not in prepare and "OUTPUTDIR" not in prepare
    assert build["DESTDIR"] == "/work/dest" and build["OUTPUTDIR"] == "/work/out"
    assert build["BUILDROOT"] == "/" and build["container"] == "mkosi"
    assert build["CHROOT_SCRIPT"] == "/work/build-script"
    assert "WITH_TESTS" not in finalize and "DESTDIR" not in finalize
    assert Path(finalize["BUILDROOT"]).name == "root"
    config = json.loads((image / "config.json").read_text())
    assert config["Distribution"] == "debian" and config["BuildPackages"] == ["make"]


def test_isolation(built: tuple[Path, Path, str]) -> None:
    project, image, _ = built
    # Prepare scripts have the network; the others only with WithNetwork=.
    assert (image / "prepare-net").read_text().split() != ["lo"]
    assert (image / "finalize-net").read_text().split() == ["lo"]
    assert not (image / "host").exists()
    assert not Path("/etc/imagebuild-script-host-write").exists()
    # BuildSourcesEphemeral=yes: what the build script wrote into $SRCDIR is gone.
    assert not (project / "written-by-build").exists()


def sandbox_context(tmp_path: Path, conf: str, scripts: dict[str, str]) -> Context:
    """A real script run on a bare root directory: the sandbox without the cost of installing Debian."""
    project = make_project(tmp_path / "project", scripts)
    (project / "mkosi.conf").write_text(conf)
    _, images = load(["-C", str(project), "summary"])
    workspace = tmp_path / "workspace"
    for d in ("root/etc", "staging"):
        (workspace / d).mkdir(parents=True)
    return Context(images[0], workspace, tmp_path / "cache")


MKOSI_CHROOT = Path(scripts.__file__).parent / "script_helpers" / "mkosi-chroot"


def test_chroot_with_network_reads_the_hosts_resolv_conf_through_resolveds_symlink(
        built: tuple[Path, Path, str]) -> None:
    _, tree, _ = built
    link = tree / "etc/resolv.conf"
    assert not link.exists() and not link.is_symlink()  # not the build host's copy
    link.symlink_to("../run/systemd/resolve/stub-resolv.conf")  # as systemd-resolved leaves it
    before = sorted((tree / "run").rglob("*"))
    try:
        result = subprocess.run(["bash", str(MKOSI_CHROOT), "cat", "/etc/resolv.conf"], capture_output=True,
                                text=True, env={**os.environ, "BUILDROOT": str(tree), "IMAGEBUILD_NETWORK": "1"},
                                check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout == Path("/etc/resolv.conf").read_text()
        # What was made for the bind mount is gone again; the symlink stays.
        assert sorted((tree / "run").rglob("*")) == before
        assert link.is_symlink()
    finally:
        link.unlink()


def test_failing_script_names_itself_its_status_and_last_output(tmp_path: Path) -> None:
    failing = {"mkosi.postinst": "#!/bin/sh\necho 'the last words'\nexit 7\n"}
    context = sandbox_context(tmp_path, CONF, failing)
    with pytest.raises(BuildError) as error:
        scripts.run_postinst_scripts(context)
    message = str(error.value)
    assert f"the post-installation script {context.config.directory}/mkosi.postinst failed" in message
    assert "exit status 7" in message and "the last words" in message
    # Nothing of the sandbox is left mounted in the workspace.
    assert mounts_below(context.workspace) == []


def test_network_and_persistent_build_sources(tmp_path: Path) -> None:
    conf = CONF.replace("BuildSourcesEphemeral=yes", "WithNetwork=yes")
    finalize = {"mkosi.finalize": """\
        #!/bin/sh
        set -e
        cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > "$BUILDROOT/net"
        echo kept > "$SRCDIR/written-by-finalize"
        """}
    context = sandbox_context(tmp_path, conf, finalize)
    scripts.run_finalize_scripts(context)
    assert (context.root / "net").read_text().split() != ["lo"]
    assert (tmp_path / "project/written-by-finalize").read_text() == "kept\n"


def test_build_script_directories(tmp_path: Path) -> None:
    conf = CONF.replace("BuildPackages=make\n", f"\n[Output]\nBuildDirectory={tmp_path}/builddir\n")
    build = {"mkosi.build": """\
        #!/bin/sh
        set -e
        echo object > "$BUILDDIR/cached.o"
        mkdir -p "$DESTDIR/etc"
        echo installed > "$DESTDIR/etc/from-destdir"
        mkdir -p "$DESTDIR/bin"
        echo tool > "$DESTDIR/bin/tool"
        echo artifact > "$OUTPUTDIR/extra-artifact"
        echo package > "$PACKAGEDIR/built.deb"
        echo overlay > "$BUILDROOT/in-overlay"
        """}
    context = sandbox_context(tmp_path, conf, build)
    (context.root / "usr/bin").mkdir(parents=True)
    (context.root / "bin").symlink_to("usr/bin")
    scripts.run_build_scripts(context)
    scripts.install_build_output(context)
    assert (tmp_path / "builddir/debian~trixie~x86-64/cached.o").read_text() == "object\n"
    assert (context.root / "etc/from-destdir").read_text() == "installed\n"
    # The image's /bin → usr/bin stays a symlink: $DESTDIR/bin goes through it.
    assert (context.root / "bin").is_symlink()
    assert (context.root / "usr/bin/tool").read_text() == "tool\n"
    assert (context.staging / "extra-artifact").read_text() == "artifact\n"
    assert (context.packages_dir / "built.deb").read_text() == "package\n"
    assert not (context.root / "in-overlay").exists()
    assert (context.build_overlay / "in-overlay").exists()
    assert mounts_below(context.workspace) == []


def test_script_that_is_not_executable_is_refused_before_building(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {"mkosi.finalize": "#!/bin/sh\n"})
    (project / "mkosi.finalize").chmod(0o644)
    result = imagebuild("-C", str(project), f"--output-dir={tmp_path}/out", "build", timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"FinalizeScripts={project / 'mkosi.finalize'}: the script is not executable" in result.stderr
    assert "install the distribution" not in result.stderr
